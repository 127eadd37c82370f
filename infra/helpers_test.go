package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/cxapi"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// assetDir holds a dummy <function>/bootstrap for each function, so the tests do not need
// `make build`.
var assetDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "orderpipe-infra-assets-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "make asset dir:", err)
		os.Exit(1)
	}
	for _, fn := range FunctionNames {
		if err := os.MkdirAll(filepath.Join(dir, fn), 0o755); err == nil {
			err = os.WriteFile(filepath.Join(dir, fn, "bootstrap"), []byte("#!/bin/sh\n"), 0o755)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "write dummy bootstrap:", err)
			os.Exit(1)
		}
	}
	assetDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// loadContext reads testdata/<name>.context.json and points assetDir at the dummy assets.
func loadContext(t testing.TB, name string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".context.json"))
	if err != nil {
		t.Fatalf("read context fixture: %v", err)
	}
	ctx := map[string]any{}
	if err := json.Unmarshal(b, &ctx); err != nil {
		t.Fatalf("decode context fixture %s: %v", name, err)
	}
	ctx[CtxAssetDir] = assetDir
	return ctx
}

// synthesized is one stack synthesized once and shared by the subtests of a file.
type synthesized struct {
	app       awscdk.App
	stack     awscdk.Stack
	pipe      *OrderPipe // the orderpipe constructs, when the stack is one
	template  assertions.Template
	resources map[string]map[string]any // logical id -> resource
}

// synthStack synthesizes stack and reads its template.
func synthStack(s *synthesized) *synthesized {
	s.template = assertions.Template_FromStack(s.stack, nil)
	tj := *s.template.ToJSON()
	res, _ := tj["Resources"].(map[string]any)
	s.resources = map[string]map[string]any{}
	for id, r := range res {
		if m, ok := r.(map[string]any); ok {
			s.resources[id] = m
		}
	}
	return s
}

// newFromFixture builds the orderpipe stack the way Build does, from a context fixture.
func newFromFixture(t testing.TB, fixture string) (awscdk.App, *OrderPipe) {
	t.Helper()
	app := NewApp(loadContext(t, fixture))
	cfg, err := ParseContext(func(k string) any { return app.Node().TryGetContext(jsii.String(k)) })
	if err != nil {
		t.Fatalf("parse context %s: %v", fixture, err)
	}
	pipe, err := NewOrderPipe(app, StackName, nil, cfg)
	if err != nil {
		t.Fatalf("new stack: %v", err)
	}
	return app, pipe
}

var (
	fullOnce  sync.Once
	fullStack *synthesized
)

// full is the orderpipe stack of testdata/full.context.json (every option on) with the cdk-nag
// pack applied, synthesized once for all tests.
func full(t *testing.T) *synthesized {
	t.Helper()
	fullOnce.Do(func() {
		app, pipe := newFromFixture(t, "full")
		ApplyNag(app)
		fullStack = synthStack(&synthesized{app: app, stack: pipe.Stack, pipe: pipe})
	})
	if fullStack == nil || fullStack.resources == nil {
		t.Fatal("full stack did not synthesize (see the first test's failure)")
	}
	return fullStack
}

// id returns the logical id of c's default (L1) resource.
func (s *synthesized) id(c constructs.IConstruct) string {
	return *s.stack.GetLogicalId(c.Node().DefaultChild().(awscdk.CfnElement))
}

// resource returns the template resource of c's default child.
func (s *synthesized) resource(t *testing.T, c constructs.IConstruct) map[string]any {
	t.Helper()
	r, ok := s.resources[s.id(c)]
	if !ok {
		t.Fatalf("no resource %s in the template", s.id(c))
	}
	return r
}

// has asserts that the template has a resource of typ whose properties match props
// (assertions.Template.HasResourceProperties), reporting a mismatch as a test error.
func (s *synthesized) has(t *testing.T, typ string, props any) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("HasResourceProperties %s: %v", typ, r)
		}
	}()
	s.template.HasResourceProperties(jsii.String(typ), props)
}

// ofType returns the resources of typ by logical id.
func (s *synthesized) ofType(typ string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for id, r := range s.resources {
		if r["Type"] == typ {
			out[id] = r
		}
	}
	return out
}

func props(r map[string]any) map[string]any {
	p, _ := r["Properties"].(map[string]any)
	return p
}

// list returns v as a list (CloudFormation allows a single value where a list is expected).
func list(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	if v == nil {
		return nil
	}
	return []any{v}
}

// statements returns the statements of a resource's policy document property.
func statements(r map[string]any) []map[string]any {
	doc, _ := props(r)["PolicyDocument"].(map[string]any)
	if doc == nil {
		doc, _ = props(r)["KeyPolicy"].(map[string]any)
	}
	var out []map[string]any
	for _, s := range list(doc["Statement"]) {
		if m, ok := s.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// flat renders a CloudFormation value the way cdk-nag does: Ref as <id>, GetAtt as <id.Attr>,
// Fn::Join concatenated.
func flat(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case map[string]any:
		if r, ok := x["Ref"].(string); ok {
			return "<" + r + ">"
		}
		if g, ok := x["Fn::GetAtt"].([]any); ok && len(g) == 2 {
			return fmt.Sprintf("<%v.%v>", g[0], g[1])
		}
		if j, ok := x["Fn::Join"].([]any); ok && len(j) == 2 {
			var parts []string
			for _, p := range list(j[1]) {
				parts = append(parts, flat(p))
			}
			return strings.Join(parts, fmt.Sprint(j[0]))
		}
	}
	return jsonString(v)
}

// messages collects the error and warning annotations of stack (cdk-nag findings among them).
func messages(t *testing.T, stack awscdk.Stack) []string {
	t.Helper()
	a := assertions.Annotations_FromStack(stack)
	anything := assertions.Match_AnyValue()
	var out []string
	for kind, found := range map[string]*[]*cxapi.SynthesisMessage{
		"error":   a.FindError(jsii.String("*"), anything),
		"warning": a.FindWarning(jsii.String("*"), anything),
	} {
		if found == nil {
			continue
		}
		for _, m := range *found {
			out = append(out, fmt.Sprintf("%s %s: %v", kind, *m.Id, m.Entry.Data))
		}
	}
	sort.Strings(out)
	return out
}

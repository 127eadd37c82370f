package local

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/orderpipe/orderpipe/pkg/pipeline"
)

// Template is a synthesized CloudFormation template (`cdk synth`'s <stack>.template.json), read
// for what the local pipeline takes from it.
type Template struct {
	Resources map[string]TemplateResource `json:"Resources"`
	Outputs   map[string]struct {
		Value any `json:"Value"`
	} `json:"Outputs"`
}

// TemplateResource is one resource of a Template.
type TemplateResource struct {
	Type       string         `json:"Type"`
	Properties map[string]any `json:"Properties"`
	Metadata   map[string]any `json:"Metadata"`
}

// ReadTemplate reads and decodes the template file at path.
func ReadTemplate(path string) (*Template, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read template: %w", err)
	}
	t := &Template{}
	if err := json.Unmarshal(b, t); err != nil {
		return nil, fmt.Errorf("decode template %s: %w", path, err)
	}
	return t, nil
}

// Physical is what one of the template's resources is locally: its Ref value and attributes
// (Fn::GetAtt), for example {"Ref": queue URL, "Arn": queue ARN, "QueueName": name}.
type Physical map[string]string

// Binding maps the template's logical ids to their local resources, and pseudo parameters
// (AWS::Region, ...) to their values.
type Binding struct {
	Resources map[string]Physical
	Region    string
	AccountID string
}

// Bind maps the bucket and the four queues of the template (found through the stack outputs
// BucketName, FilesQueueUrl, FilesDlqUrl, OrdersQueueUrl and OrdersDlqUrl) to r; the region and
// account are r's (the account is read from the orders queue ARN).
func (t *Template) Bind(r Resources) (Binding, error) {
	arn := strings.Split(r.OrdersQueueARN, ":")
	if len(arn) != 6 {
		return Binding{}, fmt.Errorf("bind template: orders queue ARN %q: want arn:aws:sqs:region:account:name", r.OrdersQueueARN)
	}
	b := Binding{Resources: map[string]Physical{}, Region: arn[3], AccountID: arn[4]}
	queue := func(url, arn string) Physical {
		return Physical{"Ref": url, "Arn": arn, "QueueUrl": url, "QueueName": arn[strings.LastIndex(arn, ":")+1:]}
	}
	for output, p := range map[string]Physical{
		pipeline.OutputBucket:      {"Ref": r.Bucket, "Arn": "arn:aws:s3:::" + r.Bucket},
		pipeline.OutputFilesQueue:  queue(r.FilesQueueURL, r.FilesQueueARN),
		pipeline.OutputFilesDLQ:    queue(r.FilesDLQURL, r.FilesDLQARN),
		pipeline.OutputOrdersQueue: queue(r.OrdersQueueURL, r.OrdersQueueARN),
		pipeline.OutputOrdersDLQ:   queue(r.OrdersDLQURL, r.OrdersDLQARN),
	} {
		o, ok := t.Outputs[output]
		if !ok {
			return b, fmt.Errorf("bind template: no output %s", output)
		}
		ref, _ := o.Value.(map[string]any)["Ref"].(string)
		if _, ok := t.Resources[ref]; !ok {
			return b, fmt.Errorf("bind template: output %s is not the Ref of a resource: %v", output, o.Value)
		}
		b.Resources[ref] = p
	}
	return b, nil
}

// FunctionPolicies returns the IAM policy documents (JSON) of the execution role of the function
// whose construct path ends in pathSuffix (for example "/Ingest/Function/Resource"; the template
// must carry aws:cdk:path metadata, as `cdk synth` writes it), with every intrinsic function
// resolved through b. A reference to a resource b does not bind (a log group, a key) resolves to
// "arn:aws:unbound:::<logical id>[.<attribute>]", which names no local resource: the grant is kept but
// allows nothing here.
//
// Errors: no or several such functions, a role that is not a resource of the template, managed
// policies on the role (their documents are not in the template), or an intrinsic function
// this resolver does not know.
func (t *Template) FunctionPolicies(pathSuffix string, b Binding) ([]string, error) {
	id, err := t.functionID(pathSuffix)
	if err != nil {
		return nil, fmt.Errorf("function policies: %w", err)
	}
	fn := t.Resources[id]
	role, ok := getAtt(fn.Properties["Role"], "Arn")
	if !ok {
		return nil, fmt.Errorf("function %s: role %v is not a role of the template", id, fn.Properties["Role"])
	}
	rr, ok := t.Resources[role]
	if !ok || rr.Type != "AWS::IAM::Role" {
		return nil, fmt.Errorf("function %s: role %s is not a role of the template", id, role)
	}
	if mp := rr.Properties["ManagedPolicyArns"]; mp != nil {
		return nil, fmt.Errorf("role %s: managed policies %v cannot be enforced locally", role, mp)
	}
	var docs []any
	for _, p := range asList(rr.Properties["Policies"]) {
		if m, ok := p.(map[string]any); ok {
			docs = append(docs, m["PolicyDocument"])
		}
	}
	ids := make([]string, 0, len(t.Resources))
	for id := range t.Resources {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		r := t.Resources[id]
		if r.Type != "AWS::IAM::Policy" {
			continue
		}
		for _, ref := range asList(r.Properties["Roles"]) {
			if m, ok := ref.(map[string]any); ok && m["Ref"] == role {
				docs = append(docs, r.Properties["PolicyDocument"])
			}
		}
	}
	out := make([]string, 0, len(docs))
	for _, d := range docs {
		v, err := b.resolve(d)
		if err != nil {
			return nil, fmt.Errorf("role %s policy: %w", role, err)
		}
		s, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("role %s policy: %w", role, err)
		}
		out = append(out, string(s))
	}
	return out, nil
}

// getAtt returns the logical id of v when v is {"Fn::GetAtt": [id, attr]}.
func getAtt(v any, attr string) (string, bool) {
	m, _ := v.(map[string]any)
	g, _ := m["Fn::GetAtt"].([]any)
	if len(g) != 2 || g[1] != attr {
		return "", false
	}
	id, ok := g[0].(string)
	return id, ok
}

// resolve replaces Ref, Fn::GetAtt and Fn::Join in v by their local values.
func (b Binding) resolve(v any) (any, error) {
	switch x := v.(type) {
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			r, err := b.resolve(e)
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	case map[string]any:
		if len(x) == 1 {
			for k, arg := range x {
				switch k {
				case "Ref":
					return b.ref(arg)
				case "Fn::GetAtt":
					return b.getAtt(arg)
				case "Fn::Join":
					return b.join(arg)
				}
				if strings.HasPrefix(k, "Fn::") {
					return nil, fmt.Errorf("intrinsic %s not supported locally", k)
				}
			}
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			r, err := b.resolve(e)
			if err != nil {
				return nil, err
			}
			out[k] = r
		}
		return out, nil
	}
	return v, nil
}

func (b Binding) ref(arg any) (any, error) {
	id, _ := arg.(string)
	switch id {
	case "AWS::Region":
		return b.Region, nil
	case "AWS::AccountId":
		return b.AccountID, nil
	case "AWS::Partition":
		return "aws", nil
	case "AWS::URLSuffix":
		return "amazonaws.com", nil
	}
	if p, ok := b.Resources[id]; ok {
		return p["Ref"], nil
	}
	return "arn:aws:unbound:::" + id, nil
}

func (b Binding) getAtt(arg any) (any, error) {
	g, _ := arg.([]any)
	if len(g) != 2 {
		return nil, fmt.Errorf("Fn::GetAtt %v: want [id, attribute]", arg)
	}
	id, _ := g[0].(string)
	attr, _ := g[1].(string)
	if p, ok := b.Resources[id]; ok {
		if v, ok := p[attr]; ok {
			return v, nil
		}
	}
	return "arn:aws:unbound:::" + id + "." + attr, nil
}

func (b Binding) join(arg any) (any, error) {
	j, _ := arg.([]any)
	if len(j) != 2 {
		return nil, fmt.Errorf("Fn::Join %v: want [delimiter, list]", arg)
	}
	sep, _ := j[0].(string)
	parts, err := b.resolve(j[1])
	if err != nil {
		return nil, err
	}
	strs := make([]string, 0, len(asList(parts)))
	for _, p := range asList(parts) {
		s, ok := p.(string)
		if !ok {
			return nil, fmt.Errorf("Fn::Join of %v: not a string", p)
		}
		strs = append(strs, s)
	}
	return strings.Join(strs, sep), nil
}

// asList returns v as a list (CloudFormation allows one value where a list is expected).
func asList(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	if v == nil {
		return nil
	}
	return []any{v}
}

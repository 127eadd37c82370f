package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCfnLint runs cfn-lint (CfnLintVersion, the one the pipeline installs) over every template
// the app synthesizes: the orderpipe stack, the pipeline stack and the orderpipe stack of its
// Deploy stage. Errors fail the test; warnings are logged.
func TestCfnLint(t *testing.T) {
	out, err := exec.Command("cfn-lint", "--version").CombinedOutput()
	if errors.Is(err, exec.ErrNotFound) {
		t.Fatalf("cfn-lint not found on PATH: install it with `pip install cfn-lint==%s`", CfnLintVersion)
	}
	if got := strings.TrimSpace(string(out)); err != nil || got != "cfn-lint "+CfnLintVersion {
		t.Fatalf("cfn-lint --version: got %q (%v), want %q: install it with `pip install cfn-lint==%s` (the version the pipeline installs, infra CfnLintVersion)",
			got, err, "cfn-lint "+CfnLintVersion, CfnLintVersion)
	}
	pipe, deployed := pipelineStacks(t)
	dir := t.TempDir()
	var files []string
	for name, s := range map[string]*synthesized{"orderpipe": full(t), "pipeline": pipe, "deployed": deployed} {
		f := filepath.Join(dir, name+".template.json")
		if err := os.WriteFile(f, []byte(jsonString(*s.template.ToJSON())), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	// Exit status is a bit mask: 2 errors, 4 warnings, 8 informational (1: cfn-lint failed).
	out, err = exec.Command("cfn-lint", append([]string{"--format", "parseable", "--"}, files...)...).CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && exit.ExitCode()&(1|2) == 0:
		t.Logf("cfn-lint warnings:\n%s", out)
	default:
		t.Errorf("cfn-lint: %v, errors:\n%s", err, out)
	}
}

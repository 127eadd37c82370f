package local

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// SynthTemplate synthesizes the CDK app of the module at dir in the way `cdk synth` runs it
// (`go run ./infra`, with the context in CDK_CONTEXT_JSON and construct path metadata on), and
// returns the path of the template of stack. The cloud assembly is kept in cacheDir under a hash
// of what the template is made from (the module's Go sources other than tests, go.mod, go.sum and
// ctx) and reused until one of them changes, so a change to the CDK code is synthesized again
// and an unchanged one costs nothing; assemblies of other sources older than an hour are removed.
//
// Errors: the app failing (its output is in the error), or no template for stack.
func SynthTemplate(ctx context.Context, dir, cacheDir, stack string, cdkContext map[string]any) (string, error) {
	c := map[string]any{"aws:cdk:enable-path-metadata": true}
	for k, v := range cdkContext {
		c[k] = v
	}
	ctxJSON, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("synth: context: %w", err)
	}
	key, err := sourceHash(dir, ctxJSON)
	if err != nil {
		return "", fmt.Errorf("synth: %w", err)
	}
	out := filepath.Join(cacheDir, "synth-"+key)
	template := filepath.Join(out, stack+".template.json")
	if _, err := os.Stat(template); err == nil {
		return template, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", fmt.Errorf("synth: %w", err)
	}
	tmp, err := os.MkdirTemp(cacheDir, "synth-tmp-")
	if err != nil {
		return "", fmt.Errorf("synth: %w", err)
	}
	defer os.RemoveAll(tmp)
	cmd := exec.CommandContext(ctx, "go", "run", "./infra")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CDK_OUTDIR="+tmp, "CDK_CONTEXT_JSON="+string(ctxJSON))
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("synth: go run ./infra: %w\n%s", err, log.String())
	}
	if _, err := os.Stat(filepath.Join(tmp, stack+".template.json")); err != nil {
		return "", fmt.Errorf("synth: no template of stack %s: %w\n%s", stack, err, log.String())
	}
	// Another process may have made the same assembly meanwhile: either is right.
	if err := os.Rename(tmp, out); err != nil && !errors.Is(err, fs.ErrExist) {
		if _, serr := os.Stat(template); serr != nil {
			return "", fmt.Errorf("synth: keep the assembly: %w", err)
		}
	}
	// Assemblies of older sources are not read again; those of the last hour are kept for a
	// process that may still be reading one.
	old, _ := filepath.Glob(filepath.Join(cacheDir, "synth-*"))
	for _, o := range old {
		if st, err := os.Stat(o); err == nil && o != out && !strings.HasPrefix(filepath.Base(o), "synth-tmp-") && time.Since(st.ModTime()) > time.Hour {
			os.RemoveAll(o)
		}
	}
	return template, nil
}

// sourceHash hashes extra and, in path order, the name and content of every non-test .go file,
// go.mod and go.sum under dir (skipping hidden directories, node_modules, cdk.out and testdata).
func sourceHash(dir string, extra []byte) (string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != dir && (strings.HasPrefix(name, ".") || name == "node_modules" || name == "cdk.out" || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if (strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go")) || name == "go.mod" || name == "go.sum" {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash sources: %w", err)
	}
	sort.Strings(files)
	h := sha256.New()
	h.Write(extra)
	for _, f := range files {
		rel, _ := filepath.Rel(dir, f)
		fmt.Fprintf(h, "\x00%s\x00", rel)
		r, err := os.Open(f)
		if err != nil {
			return "", fmt.Errorf("hash sources: %w", err)
		}
		_, err = io.Copy(h, r)
		r.Close()
		if err != nil {
			return "", fmt.Errorf("hash sources: %w", err)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// SynthPlaceholders is SynthTemplate for tests and local runs that do not deploy: the context
// gets apiBaseUrl https://orders.invalid and an assetDir of placeholder bootstraps (under
// cacheDir/assets) unless cdkContext sets them, and the template is read.
func SynthPlaceholders(ctx context.Context, dir, cacheDir, stack string, cdkContext map[string]any) (*Template, error) {
	assets := filepath.Join(cacheDir, "assets")
	for _, fn := range []string{"ingest", "dispatch", "redrive"} {
		if err := os.MkdirAll(filepath.Join(assets, fn), 0o755); err != nil {
			return nil, fmt.Errorf("synth: %w", err)
		}
		if err := os.WriteFile(filepath.Join(assets, fn, "bootstrap"), []byte("#!/bin/sh\n"), 0o755); err != nil {
			return nil, fmt.Errorf("synth: %w", err)
		}
	}
	c := map[string]any{"apiBaseUrl": "https://orders.invalid", "assetDir": assets}
	for k, v := range cdkContext {
		c[k] = v
	}
	path, err := SynthTemplate(ctx, dir, cacheDir, stack, c)
	if err != nil {
		return nil, err
	}
	return ReadTemplate(path)
}

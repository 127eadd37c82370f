package local

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/orderpipe/orderpipe/pkg/pipeline"
)

// FunctionWiring is one queue-triggered function as the template deploys it.
type FunctionWiring struct {
	Timeout  time.Duration // Timeout
	MemoryMB int           // MemorySize (recorded; the local handlers run in this process)
	// Env holds the environment variables whose values are literal strings; variables whose
	// value is an intrinsic function (a queue URL, a table name) are the local resources'.
	Env map[string]string
	// The function's SQS event source mapping.
	BatchSize               int
	MaxConcurrency          int // ScalingConfig.MaximumConcurrency; 0: none
	ReportBatchItemFailures bool
	Reserved                int // ReservedConcurrentExecutions; 0: none
}

// QueueWiring is one queue's attributes as the template deploys them.
type QueueWiring struct {
	Visibility      time.Duration
	Retention       time.Duration
	MaxReceiveCount int // redrive policy; 0: none
}

// Wiring is what the local pipeline takes from a synthesized template: the four queues'
// attributes and the ingest and dispatch functions with their event source mappings.
type Wiring struct {
	FilesQueue, FilesDLQ, OrdersQueue, OrdersDLQ QueueWiring
	Ingest, Dispatch                             FunctionWiring
}

// Settings returns base with what the wiring decides: the queues' visibility timeouts,
// retentions and maxReceiveCount, the functions' timeouts, dispatch's MaximumConcurrency
// (Instances) and reserved concurrency. API rate, transient budget and breaker stay base's
// (the functions' environment carries them; see NewPipeline).
func (w Wiring) Settings(base pipeline.Settings) pipeline.Settings {
	s := base
	s.FilesVisibility, s.OrdersVisibility = w.FilesQueue.Visibility, w.OrdersQueue.Visibility
	s.QueueRetention, s.DLQRetention = w.OrdersQueue.Retention, w.OrdersDLQ.Retention
	s.MaxReceiveCount = w.OrdersQueue.MaxReceiveCount
	s.IngestTimeout, s.DispatchTimeout = w.Ingest.Timeout, w.Dispatch.Timeout
	s.Instances, s.ReservedConcurrency = w.Dispatch.MaxConcurrency, w.Dispatch.Reserved
	return s
}

// Wiring reads the wiring from the template: the queues through the stack outputs
// (FilesQueueUrl, FilesDlqUrl, OrdersQueueUrl, OrdersDlqUrl), the functions through their
// construct paths (.../Ingest/Function/Resource, .../Dispatch/Function/Resource) and their event
// source mappings through FunctionName.
//
// Errors: a missing output, function or mapping, or a queue whose two source queues' retention
// or maxReceiveCount differ (pipeline.Settings has one of each).
func (t *Template) Wiring() (Wiring, error) {
	var w Wiring
	for _, q := range []struct {
		output string
		dst    *QueueWiring
	}{
		{pipeline.OutputFilesQueue, &w.FilesQueue}, {pipeline.OutputFilesDLQ, &w.FilesDLQ},
		{pipeline.OutputOrdersQueue, &w.OrdersQueue}, {pipeline.OutputOrdersDLQ, &w.OrdersDLQ},
	} {
		id, err := t.outputRef(q.output)
		if err != nil {
			return w, fmt.Errorf("wiring: %w", err)
		}
		p := t.Resources[id].Properties
		*q.dst = QueueWiring{
			Visibility: secondsOf(p["VisibilityTimeout"], 30),
			Retention:  secondsOf(p["MessageRetentionPeriod"], 4*24*3600),
		}
		if rp, ok := p["RedrivePolicy"].(map[string]any); ok {
			q.dst.MaxReceiveCount = int(num(rp["maxReceiveCount"]))
		}
	}
	if w.FilesQueue.Retention != w.OrdersQueue.Retention || w.FilesQueue.MaxReceiveCount != w.OrdersQueue.MaxReceiveCount || w.FilesDLQ.Retention != w.OrdersDLQ.Retention {
		return w, fmt.Errorf("wiring: the files and orders queues differ in retention or maxReceiveCount (%+v, %+v)", w.FilesQueue, w.OrdersQueue)
	}
	for _, f := range []struct {
		construct string
		dst       *FunctionWiring
	}{{"Ingest", &w.Ingest}, {"Dispatch", &w.Dispatch}} {
		id, err := t.functionID("/" + f.construct + "/Function/Resource")
		if err != nil {
			return w, fmt.Errorf("wiring: %w", err)
		}
		p := t.Resources[id].Properties
		*f.dst = FunctionWiring{
			Timeout:  secondsOf(p["Timeout"], 3),
			MemoryMB: int(num(p["MemorySize"])),
			Reserved: int(num(p["ReservedConcurrentExecutions"])),
			Env:      map[string]string{},
		}
		if env, ok := p["Environment"].(map[string]any); ok {
			vars, _ := env["Variables"].(map[string]any)
			for k, v := range vars {
				if s, ok := v.(string); ok {
					f.dst.Env[k] = s
				}
			}
		}
		esm, err := t.eventSource(id)
		if err != nil {
			return w, fmt.Errorf("wiring: %s: %w", f.construct, err)
		}
		f.dst.BatchSize = int(num(esm["BatchSize"]))
		if f.dst.BatchSize == 0 {
			f.dst.BatchSize = 10 // the SQS event source's default
		}
		if sc, ok := esm["ScalingConfig"].(map[string]any); ok {
			f.dst.MaxConcurrency = int(num(sc["MaximumConcurrency"]))
		}
		for _, r := range asList(esm["FunctionResponseTypes"]) {
			f.dst.ReportBatchItemFailures = f.dst.ReportBatchItemFailures || r == "ReportBatchItemFailures"
		}
	}
	return w, nil
}

// outputRef is the logical id of the resource the stack output is the Ref of.
func (t *Template) outputRef(output string) (string, error) {
	o, ok := t.Outputs[output]
	if !ok {
		return "", fmt.Errorf("no output %s", output)
	}
	m, _ := o.Value.(map[string]any)
	ref, _ := m["Ref"].(string)
	if _, ok := t.Resources[ref]; !ok {
		return "", fmt.Errorf("output %s is not the Ref of a resource: %v", output, o.Value)
	}
	return ref, nil
}

// functionID is the logical id of the one function whose construct path ends in pathSuffix.
func (t *Template) functionID(pathSuffix string) (string, error) {
	var fns, paths []string
	for id, r := range t.Resources {
		if r.Type != "AWS::Lambda::Function" {
			continue
		}
		p, _ := r.Metadata["aws:cdk:path"].(string)
		paths = append(paths, p)
		if strings.HasSuffix(p, pathSuffix) {
			fns = append(fns, id)
		}
	}
	if len(fns) != 1 {
		sort.Strings(paths)
		return "", fmt.Errorf("%d functions at *%s; function paths: %v", len(fns), pathSuffix, paths)
	}
	return fns[0], nil
}

// eventSource is the properties of the one event source mapping of function fn.
func (t *Template) eventSource(fn string) (map[string]any, error) {
	var found []map[string]any
	for _, r := range t.Resources {
		if r.Type != "AWS::Lambda::EventSourceMapping" {
			continue
		}
		if m, ok := r.Properties["FunctionName"].(map[string]any); ok && m["Ref"] == fn {
			found = append(found, r.Properties)
		}
	}
	if len(found) != 1 {
		return nil, fmt.Errorf("%d event source mappings of function %s, want 1", len(found), fn)
	}
	return found[0], nil
}

// secondsOf reads a template number of seconds; def (seconds) when absent.
func secondsOf(v any, def float64) time.Duration {
	n := num(v)
	if v == nil {
		n = def
	}
	return time.Duration(n * float64(time.Second))
}

// num reads a template number, written as a JSON number or a string.
func num(v any) float64 {
	switch n := v.(type) {
	case float64:
		return n
	case string:
		var f float64
		fmt.Sscan(n, &f)
		return f
	}
	return 0
}

package ingest

import (
	"context"
	"encoding/json"
)

// MetricsNamespace is the CloudWatch namespace of the ingest metrics (the same as dispatch's).
const MetricsNamespace = "orderpipe"

// Metric names of ingest, emitted in the Embedded Metric Format with the one dimension
// MetricDimension, one line per file that was not read whole or waits (infra alarms on them).
const (
	MetricFilesRefused = "FilesRefused" // files that enqueued nothing: failed verification, name, size
	MetricFilesStopped = "FilesStopped" // files whose reading stopped before the end
	MetricLinesUnread  = "LinesUnread"  // lines of those files never read as orders
	MetricFilesWaiting = "FilesWaiting" // files held back in S3: the orders queue had no room
)

// MetricDimension is the one dimension of every ingest metric: its value is the function name
// (Config.FunctionName), as for dispatch's metrics.
const MetricDimension = "Function"

// IngestMetrics returns the names of the ingest metrics, in the order above.
func IngestMetrics() []string {
	return []string{MetricFilesRefused, MetricFilesStopped, MetricLinesUnread, MetricFilesWaiting}
}

// fileMetrics are the counts of one file's outcome.
type fileMetrics struct {
	refused, stopped, unread, waiting int64
}

// emit writes m as one EMF line on the Service's metrics writer; a failure is logged.
func (s *Service) emit(ctx context.Context, m fileMetrics) {
	values := []int64{m.refused, m.stopped, m.unread, m.waiting}
	doc := map[string]any{MetricDimension: s.cfg.FunctionName}
	type metric struct{ Name, Unit string }
	declared := make([]metric, 0, len(values))
	for i, name := range IngestMetrics() {
		declared = append(declared, metric{name, "Count"})
		doc[name] = values[i]
	}
	doc["_aws"] = map[string]any{
		"Timestamp": s.now().UnixMilli(),
		"CloudWatchMetrics": []map[string]any{{
			"Namespace": MetricsNamespace, "Dimensions": [][]string{{MetricDimension}}, "Metrics": declared,
		}},
	}
	b, err := json.Marshal(doc)
	if err == nil {
		_, err = s.metrics.Write(append(b, '\n'))
	}
	if err != nil {
		s.log.WarnContext(ctx, "write metrics", "error", err)
	}
}

package order

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"testing"
)

// benchLine returns a realistic 204-byte JSON order (205 bytes with its newline).
func benchLine(n int) string {
	return fmt.Sprintf(`{"id":"ORD-26-%06d","customer":"C-%03d","amount":%4d.%02d,"currency":"EUR",`+
		`"items":[{"sku":"SKU-10","qty":2,"price":"500.00"},{"sku":"SKU-20","qty":1,"price":"234.50"}],`+
		`"createdAt":"2026-11-24T21:08:34Z"}`, n%1e6, n%1000, 1000+n%9000, n%100)
}

// benchCSVHeader and benchCSVLine are the same orders as CSV.
var benchCSVHeader = []string{"id", "customer", "amount", "currency", "items", "createdAt"}

func benchCSVLine(n int) string {
	return fmt.Sprintf(`ORD-26-%06d,C-%03d,%4d.%02d,EUR,"[{""sku"":""SKU-10"",""qty"":2,""price"":""500.00""},`+
		`{""sku"":""SKU-20"",""qty"":1,""price"":""234.50""}]",2026-11-24T21:08:34Z`, n%1e6, n%1000, 1000+n%9000, n%100)
}

// benchData returns 10,000 distinct lines in format f (CSV without its header), gzipped if gz,
// and the number of plain bytes per line on average.
func benchData(b *testing.B, f Format, gz bool) (data []byte, lineBytes int64) {
	const lines = 10000
	var plain bytes.Buffer
	for i := range lines {
		if f == CSV {
			plain.WriteString(benchCSVLine(i))
		} else {
			plain.WriteString(benchLine(i))
		}
		plain.WriteByte('\n')
	}
	lineBytes = int64(plain.Len() / lines)
	if !gz {
		return plain.Bytes(), lineBytes
	}
	var z bytes.Buffer
	w := gzip.NewWriter(&z)
	w.Write(plain.Bytes())
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	return z.Bytes(), lineBytes
}

// loop reads data again and again, forever. Over a gzip member it is an endless multi-member
// gzip stream.
type loop struct {
	data []byte
	pos  int
}

func (l *loop) Read(p []byte) (int, error) {
	n := copy(p, l.data[l.pos:])
	l.pos = (l.pos + n) % len(l.data)
	return n, nil
}

// source returns an endless input of the benchmark data, decompressed if gz.
func source(b *testing.B, f Format, gz bool) (io.Reader, int64) {
	data, lineBytes := benchData(b, f, gz)
	var src io.Reader = &loop{data: data}
	if gz {
		zr, err := gzip.NewReader(src)
		if err != nil {
			b.Fatal(err)
		}
		src = zr
	}
	return src, lineBytes
}

// measure runs next b.N times and reports bytes/s, lines/s and allocations per line.
func measure(b *testing.B, lineBytes int64, next func() error) {
	b.SetBytes(lineBytes)
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for range b.N {
		if err := next(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(b.N), "allocs/line")
}

func benchReader(b *testing.B, f Format, gz bool) {
	src, lineBytes := source(b, f, gz)
	r := NewReader(src, f, Options{Header: benchCSVHeader})
	var sink int
	measure(b, lineBytes, func() error {
		o, err := r.Next()
		sink += len(o.ID)
		return err
	})
	if sink == 0 {
		b.Fatal("no ids read")
	}
}

// benchNaiveJSON is the obvious reader: bufio.Scanner and json.Unmarshal into a map.
func benchNaiveJSON(b *testing.B, gz bool) {
	src, lineBytes := source(b, JSONLines, gz)
	sc := bufio.NewScanner(src)
	sc.Buffer(make([]byte, 64<<10), DefaultMaxLineBytes)
	var sink int
	measure(b, lineBytes, func() error {
		if !sc.Scan() {
			return fmt.Errorf("scan: %v", sc.Err())
		}
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return err
		}
		id, _ := m["id"].(string)
		sink += len(id)
		return nil
	})
	if sink == 0 {
		b.Fatal("no ids read")
	}
}

// benchNaiveCSV is the obvious CSV reader: encoding/csv, a map per row, json.Marshal.
func benchNaiveCSV(b *testing.B, gz bool) {
	src, lineBytes := source(b, CSV, gz)
	cr := csv.NewReader(src)
	var sink int
	measure(b, lineBytes, func() error {
		rec, err := cr.Read()
		if err != nil {
			return err
		}
		m := make(map[string]string, len(rec))
		for i, v := range rec {
			m[benchCSVHeader[i]] = v
		}
		body, err := json.Marshal(m)
		sink += len(body) + len(m["id"])
		return err
	})
	if sink == 0 {
		b.Fatal("no ids read")
	}
}

func BenchmarkReaderJSONLines(b *testing.B)     { benchReader(b, JSONLines, false) }
func BenchmarkReaderJSONLinesGzip(b *testing.B) { benchReader(b, JSONLines, true) }
func BenchmarkReaderCSV(b *testing.B)           { benchReader(b, CSV, false) }
func BenchmarkReaderCSVGzip(b *testing.B)       { benchReader(b, CSV, true) }
func BenchmarkNaiveJSONLines(b *testing.B)      { benchNaiveJSON(b, false) }
func BenchmarkNaiveJSONLinesGzip(b *testing.B)  { benchNaiveJSON(b, true) }
func BenchmarkNaiveCSV(b *testing.B)            { benchNaiveCSV(b, false) }
func BenchmarkNaiveCSVGzip(b *testing.B)        { benchNaiveCSV(b, true) }

// benchCount is the verifying pass's cost per line: Count, one line a call.
func benchCount(b *testing.B, f Format, gz bool) {
	src, lineBytes := source(b, f, gz)
	r := NewReader(src, f, Options{Header: benchCSVHeader})
	measure(b, lineBytes, func() error {
		_, err := r.Count(1)
		return err
	})
}

func BenchmarkCountJSONLines(b *testing.B)     { benchCount(b, JSONLines, false) }
func BenchmarkCountJSONLinesGzip(b *testing.B) { benchCount(b, JSONLines, true) }

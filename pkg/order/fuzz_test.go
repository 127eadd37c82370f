package order

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// physicalLines splits data into its lines, each with its line end, as the Reader counts them.
func physicalLines(data []byte) [][]byte {
	lines := bytes.SplitAfter(data, []byte("\n"))
	if len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// content is a line without its line end and, on the first line, its byte order mark.
func content(lines [][]byte, n int64) []byte {
	b := bytes.TrimSuffix(bytes.TrimSuffix(lines[n-1], []byte("\n")), []byte("\r"))
	if n == 1 {
		b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	}
	return b
}

// fuzzRead reads data to the end and checks what holds for every input and format: no panic,
// line numbers increase, Offset is the end of the line just returned and ends at len(data), the
// lines skipped are blank, bodies are valid JSON and ids valid. check looks at each result.
// It returns the fatal error, if any.
func fuzzRead(t *testing.T, data []byte, f Format, opts Options, check func(lines [][]byte, o Order, le *LineError)) error {
	lines := physicalLines(data)
	ends := make([]int64, len(lines)+1) // ends[n]: offset of the end of line n
	for i, l := range lines {
		ends[i+1] = ends[i] + int64(len(l))
	}
	var headerLine int64 // the CSV header: the first line not blank
	for n := int64(1); f == CSV && opts.Header == nil && n <= int64(len(lines)) && headerLine == 0; n++ {
		if !blank(content(lines, n)) {
			headerLine = n
		}
	}
	r := NewReader(bytes.NewReader(data), f, opts)
	var last int64 // line of the last result
	for {
		o, err := r.Next()
		var le *LineError
		var line int64
		switch {
		case err == io.EOF:
			if got := r.Offset(); got != int64(len(data)) {
				t.Fatalf("Offset at EOF: got %d, want %d", got, len(data))
			}
			line = int64(len(lines)) + 1
		case errors.As(err, &le):
			line = le.Line
			if len(le.Raw) > maxRaw || !bytes.HasPrefix(content(lines, line), le.Raw) {
				t.Fatalf("line %d: Raw %q is not a prefix of the line of at most 1 KiB", line, le.Raw)
			}
		case err != nil:
			return err
		default:
			line = o.Line
			if !json.Valid(o.Body) || !ValidID(o.ID) {
				t.Fatalf("line %d: accepted body %q, id %q: want valid JSON and id", line, o.Body, o.ID)
			}
		}
		if line <= last || line > int64(len(lines))+1 {
			t.Fatalf("line %d after line %d of %d", line, last, len(lines))
		}
		for n := last + 1; n < line; n++ {
			if l := content(lines, n); !blank(l) && n != headerLine {
				t.Fatalf("line %d %q skipped, want an order or a LineError", n, l)
			}
		}
		if err == io.EOF {
			return nil
		}
		if got := r.Offset(); got != ends[line] {
			t.Fatalf("Offset after line %d: got %d, want %d", line, got, ends[line])
		}
		check(lines, o, le)
		last = line
	}
}

// fuzzSeeds adds the fixtures as seeds; testdata/fuzz holds more.
func fuzzSeeds(f *testing.F, names ...string) {
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, false)
		f.Add(b, true)
	}
}

// FuzzReader reads arbitrary bytes as JSON Lines and checks each result against encoding/json
// and the id rules (see oracle).
func FuzzReader(f *testing.F) {
	fuzzSeeds(f, "orders.jsonl")
	f.Add([]byte("{\"id\":\"a\"}\r\n\n{\"id\":1}\n[1]\n"), false)
	f.Fuzz(func(t *testing.T, data []byte, small bool) {
		opts := Options{}
		if small {
			opts.MaxLineBytes = 24
		}
		err := fuzzRead(t, data, JSONLines, opts, func(lines [][]byte, o Order, le *LineError) {
			line := o.Line
			if le != nil {
				line = le.Line
			}
			l := content(lines, line)
			wantID, wantReason := "", "line longer than 24 bytes"
			if len(l) > DefaultMaxLineBytes {
				wantReason = "line longer than 262144 bytes"
			} else if !small || len(l) <= 24 {
				wantID, wantReason = oracle(l, DefaultIDField)
			}
			if le != nil && le.Reason != wantReason || le == nil && o.ID != wantID {
				t.Fatalf("line %d %q: got (%q, %v), want (%q, %q)", line, l, o.ID, le, wantID, wantReason)
			}
		})
		if err != nil {
			t.Fatalf("fatal error reading bytes: %v", err)
		}
	})
}

// FuzzReaderCSV reads arbitrary bytes as CSV and checks that each accepted row has the fields
// encoding/csv finds in the line, as a JSON object in header order.
func FuzzReaderCSV(f *testing.F) {
	fuzzSeeds(f, "orders.csv")
	f.Add([]byte("id,a\n1,\"x,\"\"y\"\"\"\n2\n"), false)
	f.Fuzz(func(t *testing.T, data []byte, small bool) {
		opts := Options{}
		if small {
			opts.MaxLineBytes = 24
		}
		var header []string
		err := fuzzRead(t, data, CSV, opts, func(lines [][]byte, o Order, le *LineError) {
			if le != nil {
				return
			}
			if header == nil {
				header = slices.Clone(headerOf(t, data, opts))
			}
			// The physical line with a "\n": at EOF encoding/csv would drop one more "\r".
			phys := bytes.TrimSuffix(lines[o.Line-1], []byte("\n"))
			if o.Line == 1 {
				phys = bytes.TrimPrefix(phys, []byte("\xef\xbb\xbf"))
			}
			rec, err := csv.NewReader(bytes.NewReader(append(phys, '\n'))).Read()
			if err != nil {
				t.Fatalf("line %d %q accepted, encoding/csv: %v", o.Line, content(lines, o.Line), err)
			}
			dec := json.NewDecoder(bytes.NewReader(o.Body))
			dec.Token()
			var got []string
			for i := 0; dec.More(); i++ {
				k, _ := dec.Token()
				v, _ := dec.Token()
				if i >= len(header) || k != header[i] {
					t.Fatalf("line %d: key %d is %q, want %q", o.Line, i, k, header)
				}
				s, _ := v.(string)
				got = append(got, s)
			}
			if !slices.Equal(got, rec) {
				t.Fatalf("line %d %q: fields %q, encoding/csv gives %q", o.Line, content(lines, o.Line), got, rec)
			}
		})
		if err != nil && !errors.Is(err, ErrBadHeader) {
			t.Fatalf("fatal error reading bytes: %v", err)
		}
	})
}

// headerOf returns the header a Reader finds in data.
func headerOf(t *testing.T, data []byte, opts Options) []string {
	r := NewReader(bytes.NewReader(data), CSV, opts)
	if _, err := r.Next(); err != nil && !errors.As(err, new(*LineError)) {
		t.Fatalf("header: %v", err)
	}
	return r.Header()
}

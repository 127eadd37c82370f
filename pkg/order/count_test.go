package order

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// A byte order mark is not part of the first line: a BOM and a line of exactly MaxLineBytes is
// accepted, one byte more is not.
func TestBOMNotCounted(t *testing.T) {
	for _, tt := range []struct {
		name   string
		extra  int
		reason string
	}{{"max line", 0, ""}, {"one byte over", 1, "line longer than 262144 bytes"}} {
		t.Run(tt.name, func(t *testing.T) {
			prefix := `{"id":"A1","pad":"`
			line := prefix + strings.Repeat("x", DefaultMaxLineBytes+tt.extra-len(prefix)-2) + `"}`
			rd := NewReader(strings.NewReader(bom+line+"\r\n"+`{"id":"A2"}`+"\n"), JSONLines, Options{})
			o, err := rd.Next()
			var le *LineError
			switch {
			case tt.reason == "" && (err != nil || o.ID != "A1" || len(o.Body) != DefaultMaxLineBytes):
				t.Fatalf("Next = %q (%d bytes), %v; want A1 of %d bytes", o.ID, len(o.Body), err, DefaultMaxLineBytes)
			case tt.reason != "" && (!errors.As(err, &le) || le.Reason != tt.reason):
				t.Fatalf("Next error %v, want %q", err, tt.reason)
			}
			if o, err := rd.Next(); err != nil || o.ID != "A2" || o.Line != 2 {
				t.Fatalf("second Next = %q line %d, %v; want A2 line 2", o.ID, o.Line, err)
			}
		})
	}
}

// Next yields inside a long run of blank lines, with Offset and Line at the blank lines
// consumed, and goes on from there.
func TestNextYields(t *testing.T) {
	const blanks = 10000
	in := `{"id":"A1"}` + "\n" + strings.Repeat("\n", blanks) + `{"id":"A2"}` + "\n"
	rd := NewReader(strings.NewReader(in), JSONLines, Options{YieldBytes: 1000})
	var ids []string
	yields := 0
	last := int64(0)
	for {
		o, err := rd.Next()
		if err == io.EOF {
			break
		}
		if errors.Is(err, ErrYield) {
			yields++
			if rd.Offset() <= last || rd.Offset()-int64(len(`{"id":"A1"}`+"\n")) != rd.Line()-1 {
				t.Fatalf("yield at offset %d line %d after offset %d; want progress, one line a byte", rd.Offset(), rd.Line(), last)
			}
			last = rd.Offset()
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, o.ID)
	}
	if len(ids) != 2 || ids[1] != "A2" || yields != blanks/1000 {
		t.Errorf("orders %v, %d yields; want [A1 A2], %d", ids, yields, blanks/1000)
	}
	if rd.Line() != blanks+2 {
		t.Errorf("last line %d, want %d", rd.Line(), blanks+2)
	}
}

// Count counts the lines Next would read, in steps of budget, to the end of the input.
func TestCount(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte("{\"id\":\"A\"}\n\n  \nnot json\n" + strings.Repeat("x", DefaultMaxLineBytes+10) + "\n{\"id\":\"B\"}"))
	zw.Close()
	tests := []struct {
		name, key, in string
		want          int64
		wantErr       error
	}{
		{"json lines", "a.jsonl", "{\"id\":\"A\"}\n\n\t\r\n{}\nx", 3, io.EOF},
		{"gzip, long line", "a.jsonl.gz", gz.String(), 4, io.EOF},
		{"csv", "a.csv", "\nid,n\nA,1\n\nB,2\n", 2, io.EOF},
		{"csv bad header counted all the same", "a.csv", "ID,n\nA,1\nB,2\n", 2, ErrBadHeader},
		{"empty", "a.csv", "", 0, io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rd, err := Open(strings.NewReader(tt.in), tt.key, Options{})
			if err != nil {
				t.Fatal(err)
			}
			var total int64
			for {
				n, err := rd.Count(3)
				total += n
				if err == nil {
					continue
				}
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Count error %v, want %v", err, tt.wantErr)
				}
				break
			}
			if total != tt.want {
				t.Errorf("counted %d lines, want %d", total, tt.want)
			}
		})
	}
}

// A count resumed with Skip and the header read so far (or an empty one for an unusable header)
// counts the rest.
func TestCountResume(t *testing.T) {
	for _, tt := range []struct {
		name, in string
		header   []string
		wantErr  error
	}{
		{"usable header", "id,n\nA,1\nB,2\nC,3\n", []string{"id", "n"}, io.EOF},
		{"unusable header", "ID,n\nA,1\nB,2\nC,3\n", []string{}, ErrBadHeader},
	} {
		t.Run(tt.name, func(t *testing.T) {
			skip := int64(len("id,n\nA,1\n"))
			rd := NewReader(strings.NewReader(tt.in), CSV, Options{Header: tt.header})
			if err := rd.Skip(skip); err != nil {
				t.Fatal(err)
			}
			n, err := rd.Count(0)
			if n != 2 || !errors.Is(err, tt.wantErr) {
				t.Errorf("Count = %d, %v; want 2, %v", n, err, tt.wantErr)
			}
		})
	}
}

// yieldInputs are inputs where a reader must yield without a line to return: inside a line too
// long (JSON Lines, and a CSV header), and in blank lines before a CSV header.
var yieldInputs = []struct {
	name      string
	f         Format
	in        string
	nextStops bool // Next stops at once: a header line too long is fatal
}{
	{"json huge line", JSONLines, `{"id":"A"}` + "\n" + strings.Repeat("x", 200<<10) + "\n" + `{"id":"B"}` + "\n", false},
	{"json huge last line", JSONLines, `{"id":"A"}` + "\n" + strings.Repeat("y", 200<<10), false},
	{"csv blank lines before the header", CSV, strings.Repeat("\n", 50<<10) + "id,n\nA,1\nB,2\n", false},
	{"csv huge first line", CSV, strings.Repeat("h", 200<<10) + "\nA,1\n", true},
}

// Next with YieldBytes yields inside a huge line and in blank lines before a CSV header, each
// time after about YieldBytes (a buffer more at most); a Reader resumed at each yield (Offset,
// Line, Header, InLine) returns what one uninterrupted Reader returns.
func TestNextYieldsAndResumes(t *testing.T) {
	const yield, max int64 = 4 << 10, 1 << 10
	type result struct {
		id   string
		line int64
		err  string
	}
	read := func(in string, f Format, yields bool) (got []result, n int) {
		opts := Options{MaxLineBytes: int(max)}
		base := int64(0)
		if yields {
			opts.YieldBytes = yield
		}
		rd := NewReader(strings.NewReader(in), f, opts)
		for {
			before := rd.Offset()
			o, err := rd.Next()
			var le *LineError
			switch {
			case err == io.EOF:
				return got, n
			case err == ErrYield:
				if c := rd.Offset() - before; c < yield || c > yield+max+int64(len(bom))+2 {
					t.Fatalf("yield after %d bytes, want %d to %d", c, yield, yield+max+int64(len(bom))+2)
				}
				n++
				// Resume at the checkpoint with a new Reader.
				base += rd.Offset()
				opts.StartLine, opts.Header, opts.InLine = rd.Line(), rd.Header(), rd.InLine()
				rd = NewReader(strings.NewReader(in[base:]), f, opts)
			case errors.As(err, &le):
				got = append(got, result{line: le.Line, err: le.Reason})
			case err != nil:
				return append(got, result{err: err.Error()}), n
			default:
				got = append(got, result{id: o.ID, line: o.Line})
			}
		}
	}
	for _, tt := range yieldInputs {
		t.Run(tt.name, func(t *testing.T) {
			want, _ := read(tt.in, tt.f, false)
			got, yields := read(tt.in, tt.f, true)
			if yields < 5 && !tt.nextStops {
				t.Errorf("%d yields, want at least 5", yields)
			}
			if diff := cmp.Diff(want, got, cmp.AllowUnexported(result{})); diff != "" {
				t.Errorf("resumed at each yield (-once +resumed):\n%s", diff)
			}
		})
	}
}

// Count stops inside a huge line and in blank lines before a CSV header once it consumed its
// budget (a buffer more at most); a count resumed there (Skip, Header, InLine) counts what one
// count to the end does.
func TestCountYieldsAndResumes(t *testing.T) {
	const budget, max int64 = 4 << 10, 1 << 10
	for _, tt := range yieldInputs {
		t.Run(tt.name, func(t *testing.T) {
			whole, wantErr := NewReader(strings.NewReader(tt.in), tt.f, Options{MaxLineBytes: int(max)}).Count(0)
			var total, offset int64
			var header []string
			inLine, stops := false, 0
			for {
				opts := Options{MaxLineBytes: int(max), Header: header, InLine: inLine}
				if offset > 0 {
					opts.StartLine = 1 // not the first line: no byte order mark
				}
				rd := NewReader(strings.NewReader(tt.in), tt.f, opts)
				if err := rd.Skip(offset); err != nil {
					t.Fatal(err)
				}
				n, err := rd.Count(budget)
				total += n
				if err != nil {
					if err != wantErr && !(errors.Is(err, ErrBadHeader) && errors.Is(wantErr, ErrBadHeader)) {
						t.Fatalf("Count error %v, want %v", err, wantErr)
					}
					break
				}
				if c := rd.Offset(); c < budget || c > budget+max+int64(len(bom))+2 {
					t.Fatalf("count stopped after %d bytes, want %d to %d", c, budget, budget+max+int64(len(bom))+2)
				}
				stops++
				offset += rd.Offset()
				header, inLine = rd.Header(), rd.InLine()
				if rd.BadHeader() != nil {
					header = []string{}
				}
			}
			if total != whole || stops < 5 {
				t.Errorf("resumed count %d after %d stops, want %d after at least 5", total, stops, whole)
			}
		})
	}
}

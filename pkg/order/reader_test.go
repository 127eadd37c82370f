package order

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// result is what one call to Next gave, in a form tests compare.
type result struct {
	Line   int64
	ID     string `json:",omitempty"`
	Body   string `json:",omitempty"`
	Reason string `json:",omitempty"`
	Raw    string `json:",omitempty"`
	Offset int64  `json:"-"`
}

// readAll calls Next until io.EOF or a fatal error and returns the results and that error (nil
// for io.EOF). It checks that Offset never decreases.
func readAll(t testing.TB, r *Reader) ([]result, error) {
	t.Helper()
	var out []result
	last := r.Offset()
	for {
		o, err := r.Next()
		if off := r.Offset(); off < last {
			t.Fatalf("Offset went back from %d to %d", last, off)
		} else {
			last = off
		}
		var le *LineError
		switch {
		case err == io.EOF:
			return out, nil
		case errors.As(err, &le):
			out = append(out, result{Line: le.Line, Reason: le.Reason, Raw: string(le.Raw), Offset: r.Offset()})
		case err != nil:
			return out, err
		default:
			o = o.Clone() // Body aliases the Reader's buffer
			out = append(out, result{Line: o.Line, ID: o.ID, Body: string(o.Body), Offset: r.Offset()})
		}
	}
}

// ok and bad build expected results.
func ok(line int64, id, body string) result     { return result{Line: line, ID: id, Body: body} }
func bad(line int64, reason, raw string) result { return result{Line: line, Reason: reason, Raw: raw} }

// ignoreOffset compares results without their offsets.
var ignoreOffset = cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Offset" }, cmp.Ignore())

// readCase is one input file and the results expected from it.
type readCase struct {
	name string
	in   string
	opts Options
	want []result
}

// runReadCases reads each case's input in format f and compares the results.
func runReadCases(t *testing.T, f Format, tests []readCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readAll(t, NewReader(strings.NewReader(tt.in), f, tt.opts))
			if err != nil {
				t.Fatalf("read: got error %v, want none", err)
			}
			if diff := cmp.Diff(tt.want, got, ignoreOffset); diff != "" {
				t.Errorf("results (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReaderJSONLines(t *testing.T) {
	long := `{"id":"L1","pad":"` + strings.Repeat("x", 300<<10) + `"}`
	exact := `{"id":"E1","pad":"` + strings.Repeat("x", DefaultMaxLineBytes-len(`{"id":"E1","pad":""}`)) + `"}`
	tests := []readCase{
		{"empty file", "", Options{}, nil},
		{"only blank lines", "\n \n\t\r\n", Options{}, nil},
		{"line numbers count blank lines", "\n\n{\"id\":\"a\"}\n  \n\t\n{\"id\":\"b\"}\n", Options{},
			[]result{ok(3, "a", `{"id":"a"}`), ok(6, "b", `{"id":"b"}`)}},
		{"no newline at end", `{"id":"a"}`, Options{}, []result{ok(1, "a", `{"id":"a"}`)}},
		{"crlf", "{\"id\":\"a\"}\r\n\r\n{\"id\":\"b\"}\r\n", Options{},
			[]result{ok(1, "a", `{"id":"a"}`), ok(3, "b", `{"id":"b"}`)}},
		{"surrounding whitespace trimmed from body", " \t{\"id\":\"a\"} \t\r\n", Options{},
			[]result{ok(1, "a", `{"id":"a"}`)}},
		{"bom at start", "\xef\xbb\xbf{\"id\":\"a\"}\n", Options{}, []result{ok(1, "a", `{"id":"a"}`)}},
		{"bom later is invalid json", "{\"id\":\"a\"}\n\xef\xbb\xbf{\"id\":\"b\"}\n", Options{},
			[]result{ok(1, "a", `{"id":"a"}`), bad(2, ReasonInvalidJSON, "\xef\xbb\xbf{\"id\":\"b\"}")}},
		{"bom when resuming is invalid json", "\xef\xbb\xbf{\"id\":\"a\"}\n", Options{StartLine: 7},
			[]result{bad(8, ReasonInvalidJSON, "\xef\xbb\xbf{\"id\":\"a\"}")}},
		{"invalid utf-8", "{\"id\":\"a\",\"n\":\"\xff\"}\n{\"id\":\"b\"}\n", Options{},
			[]result{bad(1, ReasonInvalidUTF8, "{\"id\":\"a\",\"n\":\"\xff\"}"), ok(2, "b", `{"id":"b"}`)}},
		{"overlong utf-8", "{\"id\":\"a\",\"n\":\"\xc0\xaf\"}\n", Options{},
			[]result{bad(1, ReasonInvalidUTF8, "{\"id\":\"a\",\"n\":\"\xc0\xaf\"}")}},
		{"300 KiB line then a good line", long + "\n{\"id\":\"b\"}\n", Options{},
			[]result{bad(1, "line longer than 262144 bytes", long[:1024]), ok(2, "b", `{"id":"b"}`)}},
		{"300 KiB line at the end", "{\"id\":\"a\"}\n" + long, Options{},
			[]result{ok(1, "a", `{"id":"a"}`), bad(2, "line longer than 262144 bytes", long[:1024])}},
		{"line of exactly the limit, with crlf", exact + "\r\n", Options{}, []result{ok(1, "E1", exact)}},
		{"line one byte over the limit", exact + " \n{\"id\":\"b\"}", Options{},
			[]result{bad(1, "line longer than 262144 bytes", exact[:1024]), ok(2, "b", `{"id":"b"}`)}},
		{"long line with crlf, raw without it", "{\"id\":\"a\",\"x\":\"" + strings.Repeat("y", 30) + "\"}\r\n{\"id\":\"b\"}\n", Options{MaxLineBytes: 10},
			[]result{bad(1, "line longer than 10 bytes", `{"id":"a","x":"`+strings.Repeat("y", 30)+`"}`), ok(2, "b", `{"id":"b"}`)}},
		{"small limit", "{\"id\":\"a\",\"x\":1}\n{\"id\":\"b\"}\n", Options{MaxLineBytes: 12},
			[]result{bad(1, "line longer than 12 bytes", `{"id":"a","x":1}`), ok(2, "b", `{"id":"b"}`)}},
		{"missing id", `{"ID":"a","name":"x"}`, Options{}, []result{bad(1, ReasonMissingID, `{"ID":"a","name":"x"}`)}},
		{"empty object", `{}`, Options{}, []result{bad(1, ReasonMissingID, `{}`)}},
		{"bad ids", "{\"id\":\"\"}\n{\"id\":\"-a\"}\n{\"id\":\"a b\"}\n{\"id\":\"" + strings.Repeat("a", 129) + "\"}\n{\"id\":\"é\"}\n", Options{},
			[]result{bad(1, ReasonInvalidID, `{"id":""}`), bad(2, ReasonInvalidID, `{"id":"-a"}`), bad(3, ReasonInvalidID, `{"id":"a b"}`),
				bad(4, ReasonInvalidID, `{"id":"`+strings.Repeat("a", 129)+`"}`), bad(5, ReasonInvalidID, `{"id":"é"}`)}},
		{"longest id", `{"id":"` + strings.Repeat("a", 128) + `"}`, Options{},
			[]result{ok(1, strings.Repeat("a", 128), `{"id":"`+strings.Repeat("a", 128)+`"}`)}},
		{"id not a string", "{\"id\":12}\n{\"id\":null}\n{\"id\":{\"id\":\"a\"}}\n{\"id\":[\"a\"]}\n{\"id\":true}\n", Options{},
			[]result{bad(1, ReasonIDNotString, `{"id":12}`), bad(2, ReasonIDNotString, `{"id":null}`), bad(3, ReasonIDNotString, `{"id":{"id":"a"}}`),
				bad(4, ReasonIDNotString, `{"id":["a"]}`), bad(5, ReasonIDNotString, `{"id":true}`)}},
		{"duplicate id key", "{\"id\":\"a\",\"id\":\"b\"}\n{\"id\":\"a\",\"\\u0069d\":\"a\"}\n", Options{},
			[]result{bad(1, ReasonDuplicateID, `{"id":"a","id":"b"}`), bad(2, ReasonDuplicateID, `{"id":"a","\u0069d":"a"}`)}},
		{"other duplicate keys allowed", `{"id":"a","x":1,"x":2}`, Options{}, []result{ok(1, "a", `{"id":"a","x":1,"x":2}`)}},
		{"nested id is not the order id", "{\"customer\":{\"id\":\"C1\"},\"items\":[{\"id\":\"I1\"}]}\n{\"customer\":{\"id\":\"C1\"},\"id\":\"O1\"}\n", Options{},
			[]result{bad(1, ReasonMissingID, `{"customer":{"id":"C1"},"items":[{"id":"I1"}]}`), ok(2, "O1", `{"customer":{"id":"C1"},"id":"O1"}`)}},
		{"id inside a string is not a key", `{"note":"\"id\":\"X\""}`, Options{}, []result{bad(1, ReasonMissingID, `{"note":"\"id\":\"X\""}`)}},
		{"escaped strings", `{"id":"A\u0031\u002db","k\"":"\\\"\n\/\u00e9\ud83d\ude00"}`, Options{},
			[]result{ok(1, "A1-b", `{"id":"A\u0031\u002db","k\"":"\\\"\n\/\u00e9\ud83d\ude00"}`)}},
		{"escaped id key", `{"\u0069d":"a"}`, Options{}, []result{ok(1, "a", `{"\u0069d":"a"}`)}},
		{"escaped quote in id is invalid", `{"id":"a\"b"}`, Options{}, []result{bad(1, ReasonInvalidID, `{"id":"a\"b"}`)}},
		{"numbers kept verbatim", `{"id":"a","amount":1234.50,"big":1e400,"neg":-0.0,"exp":2E-3}`, Options{},
			[]result{ok(1, "a", `{"id":"a","amount":1234.50,"big":1e400,"neg":-0.0,"exp":2E-3}`)}},
		{"not an object", "[{\"id\":\"a\"}]\n\"a\"\n12\nnull\n", Options{},
			[]result{bad(1, ReasonNotObject, `[{"id":"a"}]`), bad(2, ReasonNotObject, `"a"`), bad(3, ReasonNotObject, `12`), bad(4, ReasonNotObject, `null`)}},
		{"trailing garbage", "{\"id\":\"a\"} x\n{\"id\":\"a\"}{\"id\":\"b\"}\n{\"id\":\"a\"},\n", Options{},
			[]result{bad(1, ReasonInvalidJSON, `{"id":"a"} x`), bad(2, ReasonInvalidJSON, `{"id":"a"}{"id":"b"}`), bad(3, ReasonInvalidJSON, `{"id":"a"},`)}},
		{"invalid json", "{\"id\":\"a\",}\n{\"id\":'a'}\n{\"id\":\"a\",\"n\":01}\n{\"id\":\"a\"\n", Options{},
			[]result{bad(1, ReasonInvalidJSON, `{"id":"a",}`), bad(2, ReasonInvalidJSON, `{"id":'a'}`), bad(3, ReasonInvalidJSON, `{"id":"a","n":01}`), bad(4, ReasonInvalidJSON, `{"id":"a"`)}},
		{"control character in a string", "{\"id\":\"a\",\"n\":\"\t\"}", Options{}, []result{bad(1, ReasonInvalidJSON, "{\"id\":\"a\",\"n\":\"\t\"}")}},
		{"id field option", "{\"id\":\"x\",\"orderId\":\"O-1\"}\n{\"id\":\"x\"}\n", Options{IDField: "orderId"},
			[]result{ok(1, "O-1", `{"id":"x","orderId":"O-1"}`), bad(2, ReasonMissingID, `{"id":"x"}`)}},
		{"raw is at most 1 KiB", `{"id":1,"pad":"` + strings.Repeat("y", 2000) + `"}`, Options{},
			[]result{bad(1, ReasonIDNotString, (`{"id":1,"pad":"` + strings.Repeat("y", 2000))[:1024])}},
	}
	runReadCases(t, JSONLines, tests)
}

func TestReaderCSV(t *testing.T) {
	tests := []readCase{
		{"empty file", "", Options{}, nil},
		{"header only", "id,name\n", Options{}, nil},
		{"blank lines before the header", "\n \nid,name\n1,a\n", Options{}, []result{ok(4, "1", `{"id":"1","name":"a"}`)}},
		{"simple, blank lines counted", "id,name,amount\nA1,Ann,1234.50\n\n  \nA2,Bob,7\n", Options{},
			[]result{ok(2, "A1", `{"id":"A1","name":"Ann","amount":"1234.50"}`), ok(5, "A2", `{"id":"A2","name":"Bob","amount":"7"}`)}},
		{"crlf and bom", "\xef\xbb\xbfid,name\r\nA1,Ann\r\n", Options{}, []result{ok(2, "A1", `{"id":"A1","name":"Ann"}`)}},
		{"quoting", "id,note\n\"A1\",\"a, \"\"b\"\"\"\nA2,\"\"\nA3,\n", Options{},
			[]result{ok(2, "A1", `{"id":"A1","note":"a, \"b\""}`), ok(3, "A2", `{"id":"A2","note":""}`), ok(4, "A3", `{"id":"A3","note":""}`)}},
		{"json escaping of values", "id,note\nA1,a\\b\ttab/é\x01\n", Options{},
			[]result{ok(2, "A1", `{"id":"A1","note":"a\\b\ttab/é\u0001"}`)}},
		{"json escaping of header names", "id,\"we\"\"ird\\\"\nA1,x\n", Options{},
			[]result{ok(2, "A1", `{"id":"A1","we\"ird\\":"x"}`)}},
		{"id column anywhere", "name,id\nAnn,A1\n", Options{}, []result{ok(2, "A1", `{"name":"Ann","id":"A1"}`)}},
		{"wrong number of fields", "id,name\nA1\nA2,b,c\nA3,c\n", Options{},
			[]result{bad(2, ReasonFieldCount, "A1"), bad(3, ReasonFieldCount, "A2,b,c"), ok(4, "A3", `{"id":"A3","name":"c"}`)}},
		{"bare quote", "id,name\nA1,a\"b\n", Options{}, []result{bad(2, ReasonBareQuote, `A1,a"b`)}},
		{"quoted newline is rejected", "id,note\nA1,\"two\nlines\"\nA2,x\n", Options{},
			[]result{bad(2, ReasonUnterminated, `A1,"two`), bad(3, ReasonBareQuote, `lines"`), ok(4, "A2", `{"id":"A2","note":"x"}`)}},
		{"text after closing quote", "id,name\nA1,\"a\"b\n", Options{}, []result{bad(2, ReasonAfterQuote, `A1,"a"b`)}},
		{"missing and bad ids", "id,name\n,a\n-x,b\n\"a b\",c\n", Options{},
			[]result{bad(2, ReasonMissingID, ",a"), bad(3, ReasonInvalidID, "-x,b"), bad(4, ReasonInvalidID, `"a b",c`)}},
		{"invalid utf-8", "id,name\nA1,\xff\nA2,ok\n", Options{}, []result{bad(2, ReasonInvalidUTF8, "A1,\xff"), ok(3, "A2", `{"id":"A2","name":"ok"}`)}},
		{"long line", "id,name\nA1," + strings.Repeat("z", 40) + "\nA2,b\n", Options{MaxLineBytes: 20},
			[]result{bad(2, "line longer than 20 bytes", "A1,"+strings.Repeat("z", 40)), ok(3, "A2", `{"id":"A2","name":"b"}`)}},
		{"id field option", "id,ref\n1,R-1\n", Options{IDField: "ref"}, []result{ok(2, "R-1", `{"id":"1","ref":"R-1"}`)}},
		{"resume with a header", "A5,x\n", Options{Header: []string{"id", "name"}, StartLine: 4},
			[]result{ok(5, "A5", `{"id":"A5","name":"x"}`)}},
	}
	runReadCases(t, CSV, tests)
}

func TestReaderCSVBadHeader(t *testing.T) {
	tests := []struct {
		name string
		in   string
		opts Options
		want string // in the error text
	}{
		{"duplicate column", "id,name,name\nA1,a,b\n", Options{}, `duplicate column "name"`},
		{"no id column", "ref,name\nA1,a\n", Options{}, `no "id" column`},
		{"no id column for the id field", "id,name\nA1,a\n", Options{IDField: "orderId"}, `no "orderId" column`},
		{"bad quoting", "id,\"name\n", Options{}, ReasonUnterminated},
		{"invalid utf-8", "id,n\xffame\n", Options{}, ReasonInvalidUTF8},
		{"too long", "id,name" + strings.Repeat(",x", 20) + "\n", Options{MaxLineBytes: 16}, "line longer than 16 bytes"},
		{"duplicate column in the resume header", "A1,a\n", Options{Header: []string{"id", "id"}}, `duplicate column "id"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(strings.NewReader(tt.in), CSV, tt.opts)
			got, err := readAll(t, r)
			if !errors.Is(err, ErrBadHeader) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got error %v, want ErrBadHeader with %q", err, tt.want)
			}
			if len(got) != 0 {
				t.Errorf("got %d results before the error, want none", len(got))
			}
			if _, again := r.Next(); again != err {
				t.Errorf("Next after a fatal error: got %v, want the same error %v", again, err)
			}
		})
	}
}

func TestFormatOf(t *testing.T) {
	tests := []struct {
		key    string
		want   Format
		wantGz bool
		ok     bool
	}{
		{"uploads/a.jsonl", JSONLines, false, true},
		{"uploads/a.NDJSON", JSONLines, false, true},
		{"a.csv", CSV, false, true},
		{"a.b.CSV.GZ", CSV, true, true},
		{"uploads/2026/a.jsonl.gz", JSONLines, true, true},
		{"a.ndjson.Gz", JSONLines, true, true},
		{"a.json", 0, false, false},
		{"a.gz", 0, false, false},
		{"a.csv.zip", 0, false, false},
		{"csv", 0, false, false},
		{"dir.csv/file", 0, false, false},
		{"", 0, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			f, gz, err := FormatOf(tt.key)
			if (err == nil) != tt.ok || f != tt.want || gz != tt.wantGz {
				t.Errorf("FormatOf(%q) = %v, %v, %v; want %v, %v, ok %v", tt.key, f, gz, err, tt.want, tt.wantGz, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrUnknownFormat) {
				t.Errorf("FormatOf(%q) error %v does not wrap ErrUnknownFormat", tt.key, err)
			}
		})
	}
}

func TestValidID(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"a", true}, {"ORD-2026:00.1_x", true}, {"9", true}, {strings.Repeat("Z", 128), true},
		{"", false}, {"-a", false}, {".a", false}, {"_a", false}, {":a", false}, {strings.Repeat("Z", 129), false},
		{"a b", false}, {"a/b", false}, {"é", false}, {"a\x00", false}, {"a\n", false},
	}
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.id), func(t *testing.T) {
			if got := ValidID(tt.id); got != tt.want {
				t.Errorf("ValidID(%q) = %v, want %v", tt.id, got, tt.want)
			}
		})
	}
}

func gz(t testing.TB, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	if _, err := io.WriteString(w, s); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestOpenFixtures reads each file in testdata (plain and gzipped) and compares the results with
// its .want golden file.
func TestOpenFixtures(t *testing.T) {
	for _, name := range []string{"orders.jsonl", "orders.csv"} {
		in, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		wantText, err := os.ReadFile(filepath.Join("testdata", name+".want"))
		if err != nil {
			t.Fatal(err)
		}
		for _, key := range []string{"uploads/" + name, "uploads/" + strings.ToUpper(name) + ".gz"} {
			t.Run(key, func(t *testing.T) {
				body := in
				if strings.HasSuffix(key, ".gz") {
					body = gz(t, string(in))
				}
				r, err := Open(bytes.NewReader(body), key, Options{})
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				got, err := readAll(t, r)
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				if off := r.Offset(); off != int64(len(in)) {
					t.Errorf("Offset at the end: got %d, want %d", off, len(in))
				}
				if diff := cmp.Diff(string(wantText), formatResults(got)); diff != "" {
					t.Errorf("results (-want +got):\n%s", diff)
				}
			})
		}
	}
}

// formatResults renders results one a line, as the .want files hold them.
func formatResults(rs []result) string {
	var b strings.Builder
	for _, r := range rs {
		if r.Reason != "" {
			b.WriteString(strings.Join([]string{itoa(r.Line), "rejected", r.Reason}, "\t"))
		} else {
			b.WriteString(strings.Join([]string{itoa(r.Line), r.ID, r.Body}, "\t"))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestOpenErrors(t *testing.T) {
	good := gz(t, "{\"id\":\"a\"}\n{\"id\":\"b\"}\n")
	corrupt := bytes.Clone(good)
	corrupt[len(corrupt)-5] ^= 0xff // the length/checksum trailer
	t.Run("unknown format", func(t *testing.T) {
		if _, err := Open(strings.NewReader(""), "a.txt", Options{}); !errors.Is(err, ErrUnknownFormat) {
			t.Errorf("got %v, want ErrUnknownFormat", err)
		}
	})
	t.Run("not gzip", func(t *testing.T) {
		if _, err := Open(strings.NewReader("{\"id\":\"a\"}\n"), "a.jsonl.gz", Options{}); !errors.Is(err, gzip.ErrHeader) {
			t.Errorf("got %v, want gzip.ErrHeader", err)
		}
	})
	t.Run("empty gzip object is an empty file", func(t *testing.T) {
		r, err := Open(strings.NewReader(""), "a.csv.gz", Options{})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if _, err := r.Next(); err != io.EOF {
			t.Errorf("Next: got %v, want io.EOF", err)
		}
	})
	for _, tt := range []struct {
		name string
		in   []byte
	}{
		{"truncated gzip", good[:len(good)-10]},
		{"bad gzip checksum", corrupt},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Open(bytes.NewReader(tt.in), "a.jsonl.gz", Options{})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			_, err = readAll(t, r)
			var le *LineError
			if err == nil || errors.As(err, &le) {
				t.Fatalf("got %v, want a fatal error", err)
			}
			if _, again := r.Next(); again != err {
				t.Errorf("Next after a fatal error: got %v, want the same error", again)
			}
		})
	}
}

// TestResume stops after every result, resumes a new Reader at Offset with Header and the line
// number, and checks that the rest is what one pass gave.
func TestResume(t *testing.T) {
	for _, name := range []string{"orders.jsonl", "orders.csv"} {
		t.Run(name, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			f, _, err := FormatOf(name)
			if err != nil {
				t.Fatal(err)
			}
			all, err := readAll(t, NewReader(bytes.NewReader(in), f, Options{}))
			if err != nil {
				t.Fatal(err)
			}
			if len(all) < 5 {
				t.Fatalf("fixture gives %d results, want at least 5", len(all))
			}
			for k := range all {
				r := NewReader(bytes.NewReader(in), f, Options{})
				for range k + 1 {
					r.Next()
				}
				off, line, header := r.Offset(), all[k].Line, r.Header()
				if off != all[k].Offset {
					t.Fatalf("after result %d: Offset %d, want %d", k, off, all[k].Offset)
				}
				rest, err := readAll(t, NewReader(bytes.NewReader(in[off:]), f, Options{Header: header, StartLine: line}))
				if err != nil {
					t.Fatalf("resume after result %d: %v", k, err)
				}
				for i := range rest {
					rest[i].Offset += off
				}
				if diff := cmp.Diff(all[k+1:], rest, cmpopts.EquateEmpty()); diff != "" {
					t.Fatalf("resume after result %d (offset %d, line %d): (-one pass +resumed):\n%s", k, off, line, diff)
				}
			}
		})
	}
}

// TestIDKeptAfterNext keeps every Order.ID of a file far longer than the id block (plain,
// escaped and CSV ids) and checks that none changed after the lines that followed.
func TestIDKeptAfterNext(t *testing.T) {
	for _, tt := range []struct {
		name string
		f    Format
		line func(i int) string
	}{
		{"json lines", JSONLines, func(i int) string { return fmt.Sprintf(`{"id":"ORD-%06d","amount":"1.00"}`, i) }},
		{"json lines escaped", JSONLines, func(i int) string { return fmt.Sprintf(`{"id":"\u004fRD-%06d"}`, i) }},
		{"csv", CSV, func(i int) string { return fmt.Sprintf("ORD-%06d,1.00", i) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var in strings.Builder
			if tt.f == CSV {
				in.WriteString("id,amount\n")
			}
			const n = 5000 // 50 KiB of ids: several blocks
			for i := range n {
				in.WriteString(tt.line(i) + "\n")
			}
			r := NewReader(strings.NewReader(in.String()), tt.f, Options{})
			var kept []string
			for {
				o, err := r.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("Next: %v", err)
				}
				kept = append(kept, o.ID)
			}
			if len(kept) != n {
				t.Fatalf("got %d orders, want %d", len(kept), n)
			}
			for i, id := range kept {
				if want := fmt.Sprintf("ORD-%06d", i); id != want {
					t.Fatalf("kept ID %d = %q after reading the file, want %q", i, id, want)
				}
			}
		})
	}
}

// TestNextAllocs checks that reading a valid line allocates nothing once the Reader is warm.
func TestNextAllocs(t *testing.T) {
	for _, tt := range []struct {
		name string
		f    Format
		line string
	}{
		{"json lines", JSONLines, benchLine(1) + "\n"},
		{"json lines with escapes", JSONLines, `{"\u0069d":"A\u0031","n":"\"é\"","a":[1,{"b":null}]}` + "\n"},
		{"csv", CSV, "A1,\"Ann, \"\"B\"\"\",1234.50,EUR\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := &repeater{line: []byte(tt.line)}
			if tt.f == CSV {
				src.header = []byte("id,name,amount,currency\n")
			}
			r := NewReader(src, tt.f, Options{})
			if _, err := r.Next(); err != nil {
				t.Fatalf("Next: %v", err)
			}
			allocs := testing.AllocsPerRun(1000, func() {
				if _, err := r.Next(); err != nil {
					t.Fatalf("Next: %v", err)
				}
			})
			if allocs != 0 {
				t.Errorf("allocations per line: got %v, want 0", allocs)
			}
		})
	}
}

// TestLongLineMemory checks that a line far over the limit is skipped without being buffered.
func TestLongLineMemory(t *testing.T) {
	huge := `{"id":"H","pad":"` + strings.Repeat("x", 32<<20) + "\"}\n{\"id\":\"b\"}\n"
	r := NewReader(strings.NewReader(huge), JSONLines, Options{})
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	got, err := readAll(t, r)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	want := []result{bad(1, "line longer than 262144 bytes", huge[:1024]), ok(2, "b", `{"id":"b"}`)}
	if diff := cmp.Diff(want, got, ignoreOffset); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
		t.Errorf("reading a 32 MiB line allocated %d bytes, want at most 64 KiB", n)
	}
}

// repeater is an endless input: header once, then line again and again.
type repeater struct {
	header, line []byte
	pos          int
}

func (r *repeater) Read(p []byte) (int, error) {
	n := 0
	if len(r.header) > 0 {
		n = copy(p, r.header)
		r.header = r.header[n:]
	}
	for n < len(p) {
		c := copy(p[n:], r.line[r.pos:])
		n += c
		r.pos = (r.pos + c) % len(r.line)
	}
	return n, nil
}

func TestSkip(t *testing.T) {
	const file = "{\"id\":\"a\"}\n{\"id\":\"b\"}\n{\"id\":\"c\"}\n"
	first := int64(len("{\"id\":\"a\"}\n"))
	t.Run("resumes a gzip stream after the skipped part", func(t *testing.T) {
		r, err := Open(bytes.NewReader(gz(t, file)), "a.jsonl.gz", Options{StartLine: 1})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if err := r.Skip(first); err != nil {
			t.Fatalf("Skip: %v", err)
		}
		got, err := readAll(t, r)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		// Offsets count from the end of the skipped part.
		want := []result{{Line: 2, ID: "b", Body: `{"id":"b"}`, Offset: 11}, {Line: 3, ID: "c", Body: `{"id":"c"}`, Offset: 22}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("results (-want +got):\n%s", diff)
		}
		if got, want := r.Offset(), int64(len(file))-first; got != want {
			t.Errorf("Offset at the end: got %d, want %d (the skipped bytes not counted)", got, want)
		}
	})
	t.Run("past the end", func(t *testing.T) {
		r := NewReader(strings.NewReader(file), JSONLines, Options{StartLine: 3})
		err := r.Skip(int64(len(file)) + 1)
		if !errors.Is(err, io.EOF) {
			t.Fatalf("Skip: got %v, want an error wrapping io.EOF", err)
		}
		if _, again := r.Next(); again != err {
			t.Errorf("Next after a failed Skip: got %v, want %v", again, err)
		}
	})
}

package order

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// idPattern is the id rule as a regular expression: the reference ValidID must agree with.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)

// oracle decides a JSON Lines line with encoding/json: the reason it must be rejected, or "" and
// the id. The line is not blank.
func oracle(line []byte, idField string) (id, reason string) {
	switch {
	case !utf8.Valid(line):
		return "", ReasonInvalidUTF8
	case !json.Valid(line):
		return "", ReasonInvalidJSON
	case bytes.TrimLeft(line, " \t\r")[0] != '{':
		return "", ReasonNotObject
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	if _, err := dec.Token(); err != nil {
		panic(err)
	}
	var val json.RawMessage
	n := 0
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			panic(err)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			panic(err)
		}
		if k == idField {
			n++
			val = v
		}
	}
	switch {
	case n > 1:
		return "", ReasonDuplicateID
	case n == 0:
		return "", ReasonMissingID
	}
	if err := json.Unmarshal(val, &id); err != nil || string(val) == "null" {
		return "", ReasonIDNotString
	}
	if !idPattern.MatchString(id) {
		return "", ReasonInvalidID
	}
	return id, ""
}

// handLines are lines at the edges of the JSON grammar and of the id rules.
var handLines = []string{
	`{"id":"A1"}`, ` {"id":"A1"} `, "\t{\"id\":\"A1\"}\r", `{}`, `{ }`, `[]`, `[{"id":"a"}]`, `"id"`,
	`1`, `null`, `true`, `{"id":"a"}x`, `{"id":"a"}{}`, `{"id":"a",}`, `{,"id":"a"}`, `{"id" "a"}`,
	`{"id":"a"`, `{"id":"a"]`, `{"id":'a'}`, `{id:"a"}`, `{"id":"a","b":[1,2,]}`, `{"id":"a","b":[,1]}`,
	`{"id":"a","b":01}`, `{"id":"a","b":-}`, `{"id":"a","b":1.}`, `{"id":"a","b":.5}`, `{"id":"a","b":1e}`,
	`{"id":"a","b":1e+}`, `{"id":"a","b":-0.0e-0}`, `{"id":"a","b":1E400}`, `{"id":"a","b":+1}`,
	`{"id":"a","b":tru}`, `{"id":"a","b":nul}`, `{"id":"a","b":falsey}`, `{"id":"a","b":truefalse}`,
	`{"id":"a","b":"\x"}`, `{"id":"a","b":"\u12"}`, `{"id":"a","b":"\u12g4"}`, `{"id":"a","b":"\ud800"}`,
	`{"id":"a","b":"\ud83d\ude00"}`, "{\"id\":\"a\",\"b\":\"\x01\"}", "{\"id\":\"a\",\"b\":\"\x7f\"}",
	`{"id":"a\u0031"}`, `{"\u0069d":"a"}`, `{"\u0069d":"a","id":"b"}`, `{"i\d":"a"}`, `{"id":"a\"b"}`,
	`{"id":"a\/b"}`, `{"id":"\u0041"}`, `{"id":"\u00e9"}`, `{"id":"é"}`, `{"id":""}`, `{"id":"-a"}`,
	`{"id":"a b"}`, `{"id":1}`, `{"id":1.5}`, `{"id":null}`, `{"id":{"id":"a"}}`, `{"id":["a"]}`,
	`{"id":true}`, `{"a":{"id":"x"}}`, `{"a":[{"id":"x"}],"id":"y"}`, `{"id":"a","id":"a"}`,
	`{"id":"a","id":1}`, `{"id":1,"id":"a"}`, `{"ID":"a"}`, `{"id ":"a"}`, `{"id":"` + strings.Repeat("a", 128) + `"}`,
	`{"id":"` + strings.Repeat("a", 129) + `"}`, `{"id":"a","x":{"y":{"z":[[[[]]]]}}}`,
	`{"id":"a","x":"\"\\\/\b\f\n\r\t"}`, "{\"id\":\"a\",\"x\":\"\xe2\x80\xa8\"}", "{\"id\":\"a\"}\x00",
	"\xef\xbb\xbf{\"id\":\"a\"}", `{"id":"a","b":[1,[2,{"c":[3]}]],"d":{}}`, `{"id":"a" , "b" : 2 }`,
	`{"id":"a","b":-01}`, `{"id":"a","b":0x1}`, `{"id":"a","b":NaN}`, `{"id":"a","b":[}`, `{"id":"a","b":{]}`,
	`{"id":"a","b":{"c"}}`, `{"id":"a","b":{"c":}}`, `{"id":"a","b":{1:2}}`,
	`{"id":"a","d":` + strings.Repeat("[", maxDepth-1) + strings.Repeat("]", maxDepth-1) + `}`,
	`{"id":"a","d":` + strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth) + `}`,
	strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth),
	strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1),
}

// genValue appends a random JSON value of at most depth levels.
func genValue(rng *rand.Rand, b []byte, depth int) []byte {
	k := rng.IntN(9)
	if depth <= 0 {
		k %= 6
	}
	switch k {
	case 0:
		return strconv.AppendInt(b, rng.Int64N(2000)-1000, 10)
	case 1:
		return append(b, []string{"1234.50", "1e400", "-0.0", "2E-3", "0", "12.000001"}[rng.IntN(6)]...)
	case 2:
		return append(b, []string{"true", "false", "null"}[rng.IntN(3)]...)
	case 3, 4, 5:
		return genString(rng, b)
	case 6, 7:
		b = append(b, '{')
		for i := range rng.IntN(4) {
			if i > 0 {
				b = append(b, ',')
			}
			b = genKey(rng, b)
			b = append(b, ':')
			b = genValue(rng, b, depth-1)
		}
		return append(b, '}')
	default:
		b = append(b, '[')
		for i := range rng.IntN(4) {
			if i > 0 {
				b = append(b, ", "[:1+rng.IntN(2)]...)
			}
			b = genValue(rng, b, depth-1)
		}
		return append(b, ']')
	}
}

func genKey(rng *rand.Rand, b []byte) []byte {
	if rng.IntN(3) == 0 {
		return append(b, []string{`"id"`, `"\u0069d"`, `"i\u0064"`, `"ID"`, `"orderId"`}[rng.IntN(5)]...)
	}
	return genString(rng, b)
}

func genString(rng *rand.Rand, b []byte) []byte {
	parts := []string{"a", "Z9", "A-1.b:c_d", " ", "é", "€", "😀", `\"`, `\\`, `\/`, `\n`, `\t`, `\u0041`,
		`\u00e9`, `\ud83d\ude00`, `\ud800`, "-", "."}
	b = append(b, '"')
	for range rng.IntN(5) {
		b = append(b, parts[rng.IntN(len(parts))]...)
	}
	return append(b, '"')
}

// mutate damages a line in a random way.
func mutate(rng *rand.Rand, line []byte) []byte {
	if len(line) == 0 {
		return line
	}
	alphabet := []byte(`{}[]",:\ -.0123456789eEtrunlfsaxu` + "\t\x00\x1f\xff\xc3")
	out := bytes.Clone(line)
	i := rng.IntN(len(out))
	switch rng.IntN(4) {
	case 0:
		return append(out[:i], out[i+1:]...)
	case 1:
		return append(out[:i], append([]byte{alphabet[rng.IntN(len(alphabet))]}, out[i:]...)...)
	case 2:
		out[i] = alphabet[rng.IntN(len(alphabet))]
		return out
	default:
		return out[:i]
	}
}

// TestDifferential checks that the reader accepts exactly the lines encoding/json and the id
// rules accept, with the same id, and rejects the others with the expected reason.
func TestDifferential(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	// The BOM line first, where a BOM is allowed.
	lines := append([]string{"\xef\xbb\xbf{\"id\":\"bom\"}"}, handLines...)
	for range 20000 {
		var b []byte
		if rng.IntN(4) == 0 {
			b = genValue(rng, b, 4)
		} else {
			var fields [][]byte
			for range rng.IntN(5) {
				f := genKey(rng, nil)
				f = append(f, ':')
				fields = append(fields, genValue(rng, f, 3))
			}
			if rng.IntN(5) != 0 { // a well-formed id under both id fields, somewhere
				at := rng.IntN(len(fields) + 1)
				id := []byte(`"id":"ORD-` + strconv.Itoa(rng.IntN(1e6)) + `","orderId":"X1"`)
				fields = append(fields[:at], append([][]byte{id}, fields[at:]...)...)
			}
			b = append(b, '{')
			b = append(b, bytes.Join(fields, []byte(","))...)
			b = append(b, '}')
		}
		if rng.IntN(3) == 0 {
			for range 1 + rng.IntN(2) {
				b = mutate(rng, b)
			}
		}
		lines = append(lines, string(b))
	}
	accepted := 0
	for _, idField := range []string{"id", "orderId"} {
		// All lines in one file: line n of the file is lines[n-1].
		var file bytes.Buffer
		for _, line := range lines {
			file.WriteString(line)
			file.WriteByte('\n')
		}
		r := NewReader(&file, JSONLines, Options{IDField: idField, StartLine: 0})
		next := 0 // index in lines of the next line to check
		for {
			o, err := r.Next()
			var le *LineError
			var line int64
			switch {
			case err == io.EOF:
				line = int64(len(lines)) + 1
			case errors.As(err, &le):
				line = le.Line
			case err != nil:
				t.Fatalf("Next: unexpected error %v", err)
			default:
				line = o.Line
				accepted++
				if !json.Valid(o.Body) {
					t.Errorf("line %d %q: body %q is not valid JSON", o.Line, lines[o.Line-1], o.Body)
				}
			}
			// The lines skipped since the last result must be blank ones.
			for ; int64(next+1) < line; next++ {
				if !blank([]byte(lines[next])) {
					t.Errorf("line %d %q: skipped, want a result", next+1, lines[next])
				}
			}
			if err == io.EOF {
				break
			}
			text := lines[line-1]
			next = int(line)
			if line == 1 {
				text = strings.TrimPrefix(text, "\xef\xbb\xbf")
			}
			wantID, wantReason := oracle([]byte(text), idField)
			gotID, gotReason := o.ID, ""
			if le != nil {
				gotID, gotReason = "", le.Reason
			}
			if gotID != wantID || gotReason != wantReason {
				t.Errorf("line %d %q (id field %q): got (%q, %q), want (%q, %q)", line, text, idField, gotID, gotReason, wantID, wantReason)
			}
		}
	}
	t.Logf("accepted %d of %d", accepted, 2*len(lines))
	if accepted < len(lines)/4 {
		t.Errorf("only %d of %d lines accepted: the generator should make more valid lines", accepted, 2*len(lines))
	}
}

// TestValidIDDifferential checks ValidID against the regular expression.
func TestValidIDDifferential(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	alphabet := "aZ09._:-/ é\x00"
	for range 20000 {
		n := rng.IntN(131)
		if rng.IntN(2) == 0 {
			n = rng.IntN(4)
		}
		var b strings.Builder
		for range n {
			b.WriteByte(alphabet[rng.IntN(len(alphabet))])
		}
		if rng.IntN(3) == 0 {
			b.Reset()
			b.WriteString(strings.Repeat("a", 126+rng.IntN(4)))
		}
		s := b.String()
		if got, want := ValidID(s), idPattern.MatchString(s); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", s, got, want)
		}
	}
}

// TestDifferentialCSV checks the reader's CSV rows against encoding/csv: a line is accepted
// exactly when encoding/csv reads it as one record of the header's width with a valid id, and
// then with the same fields.
func TestDifferentialCSV(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	parts := []string{"a", "Z9", "ORD-1", ",", `"`, `""`, " ", `\`, "\t", "é", "1234.50", `"x,y"`, `"q""q"`}
	var file bytes.Buffer
	file.WriteString("id,b,c\n")
	var lines []string
	for range 20000 {
		var b strings.Builder
		fields := 3
		if rng.IntN(4) == 0 {
			fields = rng.IntN(5)
		}
		for i := range fields {
			if i > 0 {
				b.WriteByte(',')
			}
			if i == 0 && rng.IntN(2) == 0 {
				b.WriteString("ORD-" + strconv.Itoa(rng.IntN(1000)))
			}
			for range rng.IntN(3) {
				b.WriteString(parts[rng.IntN(len(parts))])
			}
		}
		if blank([]byte(b.String())) {
			continue
		}
		lines = append(lines, b.String())
		file.WriteString(b.String() + "\n")
	}
	r := NewReader(&file, CSV, Options{})
	accepted := 0
	for {
		o, err := r.Next()
		if err == io.EOF {
			break
		}
		var le *LineError
		if err != nil && !errors.As(err, &le) {
			t.Fatalf("Next: %v", err)
		}
		line := o.Line
		if le != nil {
			line = le.Line
		}
		text := lines[line-2]
		rec, cerr := csv.NewReader(strings.NewReader(text + "\n")).Read()
		want := cerr == nil && len(rec) == 3 && idPattern.MatchString(rec[0])
		if got := le == nil; got != want {
			t.Errorf("line %q: accepted %v (%v), encoding/csv gives %q, %v", text, got, le, rec, cerr)
			continue
		}
		if le != nil {
			continue
		}
		accepted++
		var m map[string]string
		if err := json.Unmarshal(o.Body, &m); err != nil {
			t.Fatalf("line %q: body %q: %v", text, o.Body, err)
		}
		if got := []string{m["id"], m["b"], m["c"]}; !slices.Equal(got, rec) || o.ID != rec[0] {
			t.Errorf("line %q: fields %q, id %q, encoding/csv gives %q", text, got, o.ID, rec)
		}
	}
	t.Logf("accepted %d of %d", accepted, len(lines))
	if accepted < len(lines)/10 {
		t.Errorf("only %d of %d lines accepted: the generator should make more valid lines", accepted, len(lines))
	}
}

package order

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// maxDepth is the deepest nesting of arrays and objects encoding/json accepts.
const maxDepth = 10000

// strPlain marks the bytes that stand for themselves inside a JSON string.
var strPlain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// parseJSON checks one JSON Lines line, already known to be valid UTF-8 and not blank, and
// returns its order, or the reason it is rejected. The check is as strict as json.Valid
// (including its nesting limit); the id is the value of the top-level key equal to r.id after
// unescaping, and must be a JSON string: a number is rejected, so that an id never depends on
// how a number is written.
func (r *Reader) parseJSON(line []byte) (Order, string) {
	i := skipWS(line, 0)
	if line[i] != '{' {
		if end, ok := r.skipValue(line, i, 0); ok && skipWS(line, end) == len(line) {
			return Order{}, ReasonNotObject
		}
		return Order{}, ReasonInvalidJSON
	}
	start := i
	var (
		ids              int  // top-level keys equal to the id field
		idStr, idEsc     bool // the last such value is a string, with escapes
		idStart, idEnd   int  // its contents
		ok               bool
		keyStart, keyEsc = 0, false
	)
	i = skipWS(line, i+1)
	if i < len(line) && line[i] == '}' {
		i++
	} else {
		for {
			if i >= len(line) || line[i] != '"' {
				return Order{}, ReasonInvalidJSON
			}
			keyStart = i + 1
			if i, keyEsc, ok = scanString(line, i); !ok {
				return Order{}, ReasonInvalidJSON
			}
			isID := r.isIDKey(line[keyStart:i-1], keyEsc)
			if i = skipWS(line, i); i >= len(line) || line[i] != ':' {
				return Order{}, ReasonInvalidJSON
			}
			if i = skipWS(line, i+1); i >= len(line) {
				return Order{}, ReasonInvalidJSON
			}
			switch {
			case isID && line[i] == '"':
				ids++
				idStr, idStart = true, i+1
				if i, idEsc, ok = scanString(line, i); !ok {
					return Order{}, ReasonInvalidJSON
				}
				idEnd = i - 1
			default:
				if isID {
					ids++
					idStr = false
				}
				if i, ok = r.skipValue(line, i, 1); !ok {
					return Order{}, ReasonInvalidJSON
				}
			}
			if i = skipWS(line, i); i >= len(line) {
				return Order{}, ReasonInvalidJSON
			}
			if line[i] == ',' {
				i = skipWS(line, i+1)
				continue
			}
			if line[i] != '}' {
				return Order{}, ReasonInvalidJSON
			}
			i++
			break
		}
	}
	body := line[start:i]
	if skipWS(line, i) != len(line) {
		return Order{}, ReasonInvalidJSON
	}
	switch {
	case ids > 1:
		return Order{}, ReasonDuplicateID
	case ids == 0:
		return Order{}, ReasonMissingID
	case !idStr:
		return Order{}, ReasonIDNotString
	}
	id := line[idStart:idEnd]
	if idEsc {
		r.idBuf = unescape(r.idBuf[:0], id)
		id = r.idBuf
	}
	if len(id) == 0 {
		return Order{}, ReasonInvalidID
	}
	if !ValidID(unsafe.String(&id[0], len(id))) { // aliases line or r.idBuf: checked, not kept
		return Order{}, ReasonInvalidID
	}
	return Order{ID: r.keepID(id), Body: body}, ""
}

// isIDKey reports whether the contents of a JSON string, with escapes if esc, equal the id field.
func (r *Reader) isIDKey(key []byte, esc bool) bool {
	if !esc {
		return string(key) == r.id
	}
	r.keyBuf = unescape(r.keyBuf[:0], key)
	return string(r.keyBuf) == r.id
}

// skipWS returns the index of the first byte at or after i that is not JSON whitespace.
func skipWS(b []byte, i int) int {
	if i < len(b) && b[i] > ' ' {
		return i
	}
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

// skipValue checks the JSON value starting at b[i], nested in depth containers, and returns the
// index just after it.
func (r *Reader) skipValue(b []byte, i, depth int) (int, bool) {
	st := &r.stack
	st.n = 0
	var ok bool
	for {
		// A value starts at b[i].
		if i >= len(b) {
			return i, false
		}
		switch c := b[i]; c {
		case '{', '[':
			if depth+st.n >= maxDepth {
				return i, false
			}
			if i = skipWS(b, i+1); i < len(b) && b[i] == c+2 { // '}' or ']'
				i++
				break
			}
			st.push(c == '{')
			if c == '{' {
				if i, ok = objectKey(b, i); !ok {
					return i, false
				}
			}
			continue
		case '"':
			if i, _, ok = scanString(b, i); !ok {
				return i, false
			}
		case 't':
			if !bytes.HasPrefix(b[i:], []byte("true")) {
				return i, false
			}
			i += 4
		case 'f':
			if !bytes.HasPrefix(b[i:], []byte("false")) {
				return i, false
			}
			i += 5
		case 'n':
			if !bytes.HasPrefix(b[i:], []byte("null")) {
				return i, false
			}
			i += 4
		default:
			if i, ok = scanNumber(b, i); !ok {
				return i, false
			}
		}
		// After a value: close containers until one has another element.
		for {
			if st.n == 0 {
				return i, true
			}
			if i = skipWS(b, i); i >= len(b) {
				return i, false
			}
			inObject := st.top()
			if inObject && b[i] == '}' || !inObject && b[i] == ']' {
				st.n--
				i++
				continue
			}
			if b[i] != ',' {
				return i, false
			}
			i = skipWS(b, i+1)
			if inObject {
				if i, ok = objectKey(b, i); !ok {
					return i, false
				}
			}
			break
		}
	}
}

// containers is the stack of open arrays and objects of skipValue, one bit each.
type containers struct {
	n    int                          // depth
	bits [(maxDepth + 63) / 64]uint64 // bit i set: container i is an object
}

func (c *containers) push(object bool) {
	w, m := c.n/64, uint64(1)<<(c.n%64)
	if object {
		c.bits[w] |= m
	} else {
		c.bits[w] &^= m
	}
	c.n++
}

func (c *containers) top() bool {
	n := c.n - 1
	return c.bits[n/64]&(1<<(n%64)) != 0
}

// objectKey checks `"key" :` at b[i] and returns the index of the value after it.
func objectKey(b []byte, i int) (int, bool) {
	if i >= len(b) || b[i] != '"' {
		return i, false
	}
	i, _, ok := scanString(b, i)
	if !ok {
		return i, false
	}
	if i = skipWS(b, i); i >= len(b) || b[i] != ':' {
		return i, false
	}
	return skipWS(b, i+1), true
}

// scanString checks the JSON string starting with the quote at b[i] and returns the index just
// after its closing quote, and whether it holds escapes.
func scanString(b []byte, i int) (end int, esc bool, ok bool) {
	i++
	for i < len(b) {
		// Eight plain bytes at a time: no '"', '\\' or control character among them.
		for i+8 <= len(b) {
			if m := specialBytes(binary.LittleEndian.Uint64(b[i:])); m != 0 {
				i += bits.TrailingZeros64(m) / 8
				break
			}
			i += 8
		}
		if i >= len(b) {
			break
		}
		c := b[i]
		if strPlain[c] {
			i++
			continue
		}
		switch c {
		case '"':
			return i + 1, esc, true
		case '\\':
			esc = true
			if i+1 >= len(b) {
				return i, esc, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || hex4(b[i+2:i+6]) < 0 {
					return i, esc, false
				}
				i += 6
			default:
				return i, esc, false
			}
		default: // a control character
			return i, esc, false
		}
	}
	return i, esc, false
}

// specialBytes returns a mask with the high bit set in the first byte of x (little-endian) that is
// '"', '\\' or below 0x20, and perhaps in later bytes; 0 if there is none.
func specialBytes(x uint64) uint64 {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	q := x ^ (ones * '"')
	bs := x ^ (ones * '\\')
	return ((q-ones) & ^q | (bs-ones) & ^bs | (x-ones*0x20) & ^x) & highs
}

// scanNumber checks the JSON number at b[i] and returns the index just after it.
func scanNumber(b []byte, i int) (int, bool) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(b, i+1)
	default:
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return j, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return j, false
		}
		i = j
	}
	return i, true
}

// digits returns the index of the first byte at or after i that is not a decimal digit.
func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// hex4 returns the value of 4 hexadecimal digits, or -1.
func hex4(b []byte) rune {
	var v rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		v = v<<4 | rune(c)
	}
	return v
}

// unescape appends the contents of a checked JSON string, with its escapes decoded as
// encoding/json does (a lone surrogate becomes U+FFFD), to dst.
func unescape(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		switch s[i+1] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r1 := hex4(s[i+2:])
			i += 6
			if utf16.IsSurrogate(r1) {
				if i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
					if d := utf16.DecodeRune(r1, hex4(s[i+2:])); d != unicode.ReplacementChar {
						dst = utf8.AppendRune(dst, d)
						i += 6
						continue
					}
				}
				r1 = unicode.ReplacementChar
			}
			dst = utf8.AppendRune(dst, r1)
			continue
		default: // '"', '\\', '/'
			dst = append(dst, s[i+1])
		}
		i += 2
	}
	return dst
}

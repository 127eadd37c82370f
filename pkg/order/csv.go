package order

import (
	"fmt"
	"unicode/utf8"
	"unsafe"
)

// readHeader reads the CSV header row: the first line that is not blank. An input without one
// gives io.EOF (an empty file holds no orders). Once the blank lines before it take the bytes
// consumed since start to budget (0 or less: no bound), it returns ErrYield; call it again to go on.
func (r *Reader) readHeader(start, budget int64) error {
	for {
		line, long, err := r.readLine()
		if err != nil {
			return err
		}
		switch {
		case long:
			return fmt.Errorf("read csv header, line %d: %w: %s", r.line, ErrBadHeader, r.long)
		case blank(line) && budget > 0 && r.offset-start >= budget:
			return ErrYield
		case blank(line):
			continue
		case !utf8.Valid(line):
			return fmt.Errorf("read csv header, line %d: %w: %s", r.line, ErrBadHeader, ReasonInvalidUTF8)
		}
		if reason := r.splitCSV(line, false); reason != "" {
			return fmt.Errorf("read csv header, line %d: %w: %s", r.line, ErrBadHeader, reason)
		}
		h := make([]string, len(r.ends)/2)
		for i := range h {
			h[i] = string(r.vals[r.ends[2*i]:r.ends[2*i+1]])
		}
		if err := r.setHeader(h); err != nil {
			return fmt.Errorf("read csv header, line %d: %w", r.line, err)
		}
		return nil
	}
}

// setHeader checks the CSV header h and prepares the JSON keys of the columns.
func (r *Reader) setHeader(h []string) error {
	seen := make(map[string]bool, len(h))
	r.keys = make([][]byte, len(h))
	r.idCol = -1
	for i, name := range h {
		if seen[name] {
			return fmt.Errorf("%w: duplicate column %q", ErrBadHeader, name)
		}
		seen[name] = true
		if name == r.id {
			r.idCol = i
		}
		k := appendJSONString(nil, []byte(name))
		r.keys[i] = append(k, ':')
	}
	if r.idCol < 0 {
		return fmt.Errorf("%w: no %q column", ErrBadHeader, r.id)
	}
	r.header = h
	return nil
}

// splitCSV splits one CSV line into fields (RFC 4180 quoting, no line breaks inside fields)
// and returns the reason the line is malformed, or "". Without asJSON the unquoted values go to
// r.vals; with it, r.body receives the JSON object of the row (keys from r.keys, values
// JSON-escaped). Either way r.ends holds the start and end of each value in that buffer.
func (r *Reader) splitCSV(line []byte, asJSON bool) string {
	r.ends = r.ends[:0]
	if !asJSON {
		var reason string
		r.vals, reason = r.splitFields(line, r.vals[:0], false)
		return reason
	}
	var reason string
	r.body, reason = r.splitFields(line, append(r.body[:0], '{'), true)
	r.body = append(r.body, '}')
	return reason
}

// csvPlain marks the bytes copied as they are from an unquoted CSV field to a JSON string.
var csvPlain = func() [256]bool {
	t := strPlain
	t[','] = false
	return t
}()

// splitFields is splitCSV writing to out.
func (r *Reader) splitFields(line, out []byte, asJSON bool) ([]byte, string) {
	i := 0
	for n := 0; ; n++ {
		if asJSON {
			if n > 0 {
				out = append(out, ',')
			}
			if n < len(r.keys) {
				out = append(out, r.keys[n]...)
			}
			out = append(out, '"')
		}
		start := len(out)
		if i < len(line) && line[i] == '"' {
			i++
			run := i // start of the bytes not yet copied
			for {
				if i >= len(line) {
					return out, ReasonUnterminated
				}
				c := line[i]
				if strPlain[c] {
					i++
					continue
				}
				out = append(out, line[run:i]...)
				if c == '"' {
					if i+1 < len(line) && line[i+1] == '"' { // an escaped quote
						out = appendByte(out, '"', asJSON)
						i += 2
						run = i
						continue
					}
					i++
					break
				}
				out = appendByte(out, c, asJSON)
				i++
				run = i
			}
			if i < len(line) && line[i] != ',' {
				return out, ReasonAfterQuote
			}
		} else {
			run := i
			for ; i < len(line); i++ {
				c := line[i]
				if csvPlain[c] {
					continue
				}
				if c == ',' {
					break
				}
				if c == '"' {
					return out, ReasonBareQuote
				}
				out = append(out, line[run:i]...)
				out = appendByte(out, c, asJSON)
				run = i + 1
			}
			out = append(out, line[run:i]...)
		}
		r.ends = append(r.ends, start, len(out))
		if asJSON {
			out = append(out, '"')
		}
		if i == len(line) {
			return out, ""
		}
		i++ // the comma
	}
}

// appendByte appends c, JSON-escaped if asJSON.
func appendByte(b []byte, c byte, asJSON bool) []byte {
	if !asJSON || strPlain[c] {
		return append(b, c)
	}
	return appendEscapedByte(b, c)
}

// parseCSV turns one CSV data line into an order whose body is a JSON object of strings, or
// returns the reason the line is rejected.
func (r *Reader) parseCSV(line []byte) (Order, string) {
	if reason := r.splitCSV(line, true); reason != "" {
		return Order{}, reason
	}
	if len(r.ends) != 2*len(r.keys) {
		return Order{}, ReasonFieldCount
	}
	// The id as escaped in the body: a valid id needs no escaping, an invalid one stays invalid.
	id := r.body[r.ends[2*r.idCol]:r.ends[2*r.idCol+1]]
	switch {
	case len(id) == 0:
		return Order{}, ReasonMissingID
	case !ValidID(unsafe.String(&id[0], len(id))): // aliases r.body: checked, not kept
		return Order{}, ReasonInvalidID
	}
	return Order{ID: r.keepID(id), Body: r.body}, ""
}

// appendJSONString appends s, valid UTF-8, as a JSON string.
func appendJSONString(b, s []byte) []byte {
	b = append(b, '"')
	b = appendEscaped(b, s)
	return append(b, '"')
}

// appendEscaped appends s, valid UTF-8, escaped for the inside of a JSON string.
func appendEscaped(b, s []byte) []byte {
	start := 0
	for i, c := range s {
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		b = appendEscapedByte(b, c)
		start = i + 1
	}
	return append(b, s[start:]...)
}

// appendEscapedByte appends c, one of '"', '\\' or a control character, escaped for JSON.
func appendEscapedByte(b []byte, c byte) []byte {
	const hex = "0123456789abcdef"
	switch c {
	case '"', '\\':
		return append(b, '\\', c)
	case '\n':
		return append(b, '\\', 'n')
	case '\r':
		return append(b, '\\', 'r')
	case '\t':
		return append(b, '\\', 't')
	}
	return append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
}

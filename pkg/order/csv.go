package order

import (
	"bytes"
	"fmt"
	"unicode/utf8"
	"unsafe"
)

// readHeader reads the CSV header row: the first line that is not blank. An input without one
// gives io.EOF (an empty file holds no orders).
func (r *Reader) readHeader() error {
	for {
		line, long, err := r.readLine()
		if err != nil {
			return err
		}
		switch {
		case long:
			return fmt.Errorf("read csv header, line %d: %w: %s", r.line, ErrBadHeader, r.long)
		case blank(line):
			continue
		case !utf8.Valid(line):
			return fmt.Errorf("read csv header, line %d: %w: %s", r.line, ErrBadHeader, ReasonInvalidUTF8)
		}
		if reason := r.splitCSV(line); reason != "" {
			return fmt.Errorf("read csv header, line %d: %w: %s", r.line, ErrBadHeader, reason)
		}
		h := make([]string, len(r.ends))
		start := 0
		for i, end := range r.ends {
			h[i] = string(r.vals[start:end])
			start = end
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

// splitCSV splits one CSV line into fields (RFC 4180 quoting, no line breaks inside fields):
// the unquoted values go to r.vals, the end of each in r.ends. It returns the reason the line is
// malformed, or "".
func (r *Reader) splitCSV(line []byte) string {
	r.vals, r.ends = r.vals[:0], r.ends[:0]
	i := 0
	for {
		if i < len(line) && line[i] == '"' {
			i++
			for {
				j := bytes.IndexByte(line[i:], '"')
				if j < 0 {
					return ReasonUnterminated
				}
				r.vals = append(r.vals, line[i:i+j]...)
				i += j + 1
				if i < len(line) && line[i] == '"' {
					r.vals = append(r.vals, '"')
					i++
					continue
				}
				break
			}
			r.ends = append(r.ends, len(r.vals))
			if i == len(line) {
				return ""
			}
			if line[i] != ',' {
				return ReasonAfterQuote
			}
			i++
			continue
		}
		end := len(line)
		if j := bytes.IndexByte(line[i:], ','); j >= 0 {
			end = i + j
		}
		f := line[i:end]
		if bytes.IndexByte(f, '"') >= 0 {
			return ReasonBareQuote
		}
		r.vals = append(r.vals, f...)
		r.ends = append(r.ends, len(r.vals))
		if end == len(line) {
			return ""
		}
		i = end + 1
	}
}

// parseCSV turns one CSV data line into an order whose body is a JSON object of strings, or
// returns the reason the line is rejected.
func (r *Reader) parseCSV(line []byte) (Order, string) {
	if reason := r.splitCSV(line); reason != "" {
		return Order{}, reason
	}
	if len(r.ends) != len(r.keys) {
		return Order{}, ReasonFieldCount
	}
	b := append(r.body[:0], '{')
	var id []byte
	start := 0
	for k, end := range r.ends {
		if k > 0 {
			b = append(b, ',')
		}
		b = append(b, r.keys[k]...)
		v := r.vals[start:end]
		if k == r.idCol {
			id = v
		}
		b = appendJSONString(b, v)
		start = end
	}
	b = append(b, '}')
	r.body = b
	switch {
	case len(id) == 0:
		return Order{}, ReasonMissingID
	case !ValidID(unsafe.String(&id[0], len(id))):
		return Order{}, ReasonInvalidID
	}
	return Order{ID: unsafe.String(&id[0], len(id)), Body: b}, ""
}

// appendJSONString appends s, valid UTF-8, as a JSON string.
func appendJSONString(b, s []byte) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i, c := range s {
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

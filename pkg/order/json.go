package order

import (
	"bytes"
	"encoding/json"
)

// parseJSON validates one JSON Lines line and returns its order, or the reason it is rejected.
func (r *Reader) parseJSON(line []byte) (Order, string) {
	line = bytes.Trim(line, " \t\r")
	if !json.Valid(line) {
		return Order{}, ReasonInvalidJSON
	}
	if line[0] != '{' {
		return Order{}, ReasonNotObject
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	dec.Token() // {
	var id any
	n := 0
	for dec.More() {
		k, _ := dec.Token()
		var v any
		_ = dec.Decode(&v)
		if k == r.id {
			n++
			id = v
		}
	}
	switch {
	case n > 1:
		return Order{}, ReasonDuplicateID
	case n == 0:
		return Order{}, ReasonMissingID
	}
	s, ok := id.(string)
	if !ok {
		return Order{}, ReasonIDNotString
	}
	if !ValidID(s) {
		return Order{}, ReasonInvalidID
	}
	return Order{ID: s, Body: line}, ""
}

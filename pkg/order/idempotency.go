package order

import (
	"crypto/sha256"
	"encoding/hex"
)

// IdempotencyKey is the key of one order's content: the order id, "~", and the first 32 hex
// digits (128 bits) of the SHA-256 of the order's body exactly as the message carries it. The same
// order sent twice has the same key; the same id with another body (an updated order) has another.
// It is at most 161 bytes, of characters valid in an HTTP header and a DynamoDB key. Every part that
// keys on an order's content (dispatch's delivery record) uses this function.
func IdempotencyKey(id string, body []byte) string {
	sum := sha256.Sum256(body)
	return id + "~" + hex.EncodeToString(sum[:16])
}

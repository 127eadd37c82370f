// Package order defines orders and the files that carry them: the streaming reader for
// JSON Lines and CSV (optionally gzip-compressed), validation of each line, and the names of the
// message attributes that carry an order through the queues.
package order

// Command dispatch is the Lambda function behind the orders queue's event source mapping (batch
// size 1, partial batch responses). Its environment is documented in docs/CONTRACTS.md; all
// behaviour lives in pkg/dispatch.
package main

// This folder holds Node tools (tools/package.json), not Go code. This go.mod keeps the Go
// files shipped inside node_modules out of the main module's ./... pattern.
module orderpipe.invalid/tools

go 1.26

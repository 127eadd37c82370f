// Package test holds the end-to-end tests of orderpipe against the local stand-ins (moto for
// S3, SNS and SQS; httptest for the order API). Run them with `make test`, or with
// AWS_ENDPOINT_URL pointing at a running moto_server.
package test

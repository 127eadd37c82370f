package redrive

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// responseError is the shape of the SDK's error for an HTTP answer with status, wrapping err.
func responseError(status int, err error) error {
	return fmt.Errorf("operation error SQS: StartMessageMoveTask: %w", &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
			Err:      err,
		},
	})
}

func TestNotImplemented(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"moto: 500 with an HTML body", responseError(500, &smithy.DeserializationError{Err: errors.New("invalid character '<'")}), true},
		{"501 with no AWS error", responseError(501, errors.New("not implemented")), true},
		{"unknown operation code", responseError(400, &smithy.GenericAPIError{Code: "InvalidAction"}), true},
		{"unknown operation, JSON protocol", responseError(400, &smithy.GenericAPIError{Code: "UnknownOperationException"}), true},
		{"a task already runs or not a DLQ", responseError(400, &smithy.GenericAPIError{Code: "UnsupportedOperation"}), false},
		{"SQS internal error after retries", responseError(500, &smithy.GenericAPIError{Code: "InternalError"}), false},
		{"access denied", responseError(403, &smithy.GenericAPIError{Code: "AccessDenied"}), false},
		{"400 with no AWS error", responseError(400, errors.New("bad")), false},
		{"no HTTP answer", errors.New("dial tcp: connection refused"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := notImplemented(tt.err); got != tt.want {
				t.Errorf("notImplemented(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

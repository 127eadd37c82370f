package local

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// iamBootstrapRequests is the number of requests a moto_server started by StartMotoIAM serves
// without authentication: CreateUser, PutUserPolicy and CreateAccessKey of the administrator.
const iamBootstrapRequests = 3

// AdminUser is the IAM user StartMotoIAM creates, allowed every action on every resource.
const AdminUser = "orderpipe-local-admin"

// StartMotoIAM is StartMoto with IAM enforced: after the administrator is created, every request
// must be signed with the access key of an IAM user of the stand-in, and is allowed only by that
// user's policies (moto's INITIAL_NO_AUTH_ACTION_COUNT). It returns the administrator's
// credentials (AdminUser, allowed everything), for provisioning and for the tests' own reads;
// give each function its own principal with CreatePrincipal.
//
// Nothing else may talk to the server before StartMotoIAM returns: the administrator is made by
// the only iamBootstrapRequests requests served unauthenticated.
func StartMotoIAM(ctx context.Context) (endpoint string, admin aws.Credentials, stop func(), err error) {
	endpoint, stop, err = startMoto(ctx, []string{"INITIAL_NO_AUTH_ACTION_COUNT=" + strconv.Itoa(iamBootstrapRequests)})
	if err != nil {
		return "", aws.Credentials{}, nil, err
	}
	// Unauthenticated: any key signs these.
	cfg := ClientConfig(endpoint, aws.Credentials{AccessKeyID: "bootstrap", SecretAccessKey: "bootstrap"})
	admin, err = CreatePrincipal(ctx, cfg, AdminUser, []string{
		`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`,
	})
	if err != nil {
		stop()
		return "", aws.Credentials{}, nil, fmt.Errorf("start moto with IAM: create the administrator: %w", err)
	}
	return endpoint, admin, stop, nil
}

// ClientConfig is the aws.Config of a client of the stand-in at endpoint that signs with creds,
// in moto's default region us-east-1; nothing is read from the environment or shared files.
func ClientConfig(endpoint string, creds aws.Credentials) aws.Config {
	cfg := aws.NewConfig()
	cfg.Region = "us-east-1"
	cfg.BaseEndpoint = aws.String(endpoint)
	cfg.Credentials = credentials.StaticCredentialsProvider{Value: creds}
	return *cfg
}

// CreatePrincipal creates, with cfg's credentials, the IAM user name with each of policies (IAM
// policy documents, JSON) as an inline policy, and returns the credentials of a new access key of
// it: a principal allowed exactly what the policies allow. Before they are stored each policy
// goes through MotoPolicy.
func CreatePrincipal(ctx context.Context, cfg aws.Config, name string, policies []string) (aws.Credentials, error) {
	c := iam.NewFromConfig(cfg)
	if _, err := c.CreateUser(ctx, &iam.CreateUserInput{UserName: &name}); err != nil {
		return aws.Credentials{}, fmt.Errorf("create IAM user %s: %w", name, err)
	}
	for i, p := range policies {
		doc, err := MotoPolicy(p)
		if err != nil {
			return aws.Credentials{}, fmt.Errorf("policy %d of IAM user %s: %w", i, name, err)
		}
		if _, err := c.PutUserPolicy(ctx, &iam.PutUserPolicyInput{
			UserName: &name, PolicyName: aws.String(fmt.Sprintf("policy-%d", i)), PolicyDocument: &doc,
		}); err != nil {
			return aws.Credentials{}, fmt.Errorf("put policy %d of IAM user %s: %w", i, name, err)
		}
	}
	key, err := c.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: &name})
	if err != nil {
		return aws.Credentials{}, fmt.Errorf("create access key of IAM user %s: %w", name, err)
	}
	return aws.Credentials{
		AccessKeyID:     aws.ToString(key.AccessKey.AccessKeyId),
		SecretAccessKey: aws.ToString(key.AccessKey.SecretAccessKey),
		Source:          "moto IAM user " + name,
	}, nil
}

// batchActions are the SQS batch calls and the single action AWS authorizes each of them by.
var batchActions = map[string]string{
	"sqs:SendMessage":             "sqs:SendMessageBatch",
	"sqs:DeleteMessage":           "sqs:DeleteMessageBatch",
	"sqs:ChangeMessageVisibility": "sqs:ChangeMessageVisibilityBatch",
}

// resourceChecked are the services whose resources moto 5.2.1 checks (the object or bucket ARN,
// the queue ARN); it checks every other service's actions against resource "*".
var resourceChecked = map[string]bool{"s3": true, "sqs": true}

// MotoPolicy returns policy (an IAM policy document) as moto must be given it to enforce what AWS
// enforces, as far as moto can:
//   - AWS authorizes an SQS batch call (SendMessageBatch, DeleteMessageBatch,
//     ChangeMessageVisibilityBatch) by its single action (sqs:SendMessage, ...), moto by the
//     batch action's own name: each statement naming a single action also names its batch
//     action (a statement naming the batch action alone is left as it is: on AWS it allows
//     nothing);
//   - moto checks the actions of services other than S3 and SQS (DynamoDB, Secrets Manager,
//     SNS, KMS, ...) against resource "*", which a grant on one table or secret never matches:
//     those actions move to a statement of their own with Resource "*", so the action is still
//     enforced, the resource not.
func MotoPolicy(policy string) (string, error) {
	var doc map[string]any
	if err := json.Unmarshal([]byte(policy), &doc); err != nil {
		return "", fmt.Errorf("not a policy document: %w", err)
	}
	stmts, ok := doc["Statement"].([]any)
	if !ok {
		stmts = []any{doc["Statement"]}
	}
	out := make([]any, 0, len(stmts))
	for _, s := range stmts {
		st, ok := s.(map[string]any)
		if !ok {
			return "", fmt.Errorf("statement %v: not an object", s)
		}
		actions := stringList(st["Action"])
		for _, a := range actions {
			if b, ok := batchActions[a]; ok && !slices.Contains(actions, b) {
				actions = append(actions, b)
			}
		}
		var checked, unchecked []string
		for _, a := range actions {
			if service, _, _ := strings.Cut(a, ":"); resourceChecked[service] || a == "*" {
				checked = append(checked, a)
			} else {
				unchecked = append(unchecked, a)
			}
		}
		if len(unchecked) > 0 && st["Resource"] != nil && st["Resource"] != "*" {
			loose := maps.Clone(st)
			loose["Action"], loose["Resource"] = unchecked, "*"
			delete(loose, "Sid")
			out = append(out, loose)
			actions = checked
		}
		if len(actions) > 0 {
			st["Action"] = actions
			out = append(out, st)
		} else if st["Action"] == nil {
			out = append(out, st) // NotAction: as it is
		}
	}
	doc["Statement"] = out
	b, err := json.Marshal(doc)
	return string(b), err
}

// stringList reads a policy element that is a string or a list of strings.
func stringList(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	case []string:
		return x
	}
	return nil
}

// S3Options sets what an S3 client of the stand-in needs (use it with s3.NewFromConfig): path-style
// addressing, response checksums validated only when required (moto sends none), and object keys
// escaped in the request path as the stand-in reads them when it checks the signature (see
// motoPathEscaping).
func S3Options(o *s3.Options) {
	o.UsePathStyle = true
	o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
		return st.Build.Add(motoPathEscaping{}, middleware.After)
	})
}

// motoPathEscaping sends the request path with sub-delimiters ("@", "=", "!", ...) as they are
// and everything else but unreserved characters and "/" percent-encoded. The SDK encodes an
// object key's "@" as %40 and signs it so, which AWS accepts; moto, checking the signature when
// IAM is enforced, recomputes it over the decoded path quoted again with sub-delimiters left as
// they are, and refuses the request (SignatureDoesNotMatch). Both forms decode to the same key.
// A key holding "%" still cannot be signed for moto.
type motoPathEscaping struct{}

func (motoPathEscaping) ID() string { return "orderpipe.MotoPathEscaping" }

func (motoPathEscaping) HandleBuild(ctx context.Context, in middleware.BuildInput, next middleware.BuildHandler) (middleware.BuildOutput, middleware.Metadata, error) {
	if req, ok := in.Request.(*smithyhttp.Request); ok {
		var b strings.Builder
		for i := 0; i < len(req.URL.Path); i++ {
			c := req.URL.Path[i]
			if ('0' <= c && c <= '9') || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || strings.IndexByte("-_.~/!$&'()*+,:;=@", c) >= 0 {
				b.WriteByte(c)
				continue
			}
			fmt.Fprintf(&b, "%%%02X", c)
		}
		req.URL.RawPath = b.String()
	}
	return next.HandleBuild(ctx, in)
}

package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// standInRegion is the region used against a stand-in when none is configured.
const standInRegion = "us-east-1"

// session holds the AWS clients and the resolved resource names of one command.
type session struct {
	cfg      aws.Config
	endpoint string // empty on AWS
	s3       *s3.Client
	sqs      *sqs.Client
	names    resourceNames     // queues are URLs once resolved by queueURL
	outputs  map[string]string // the stack's outputs; nil without --stack
	peekWait time.Duration     // cli.peekWait
}

// scanner reads the queue at queueURL without consuming it, up to max messages.
func (s *session) scanner(queueURL string, max int) scanner {
	return scanner{sqs: s.sqs, queueURL: queueURL, max: max, wait: s.peekWait}
}

// connect loads the AWS configuration and resolves the resource names: flags, then the
// environment, then the stack's outputs.
func (c *cli) connect(ctx context.Context, o *options) (*session, error) {
	cfg, endpoint, err := c.awsConfig(ctx, o)
	if err != nil {
		return nil, err
	}
	s := &session{
		cfg:      cfg,
		endpoint: endpoint,
		s3:       s3.NewFromConfig(cfg, func(so *s3.Options) { so.UsePathStyle = endpoint != "" }),
		sqs:      sqs.NewFromConfig(cfg),
		names:    o.names,
		peekWait: c.peekWait,
	}
	for _, r := range resourceSpecs {
		if p := r.field(&s.names); *p == "" {
			*p = c.getenv(r.env)
		}
	}
	stack := o.stack
	if stack == "" {
		stack = c.getenv("ORDERPIPE_STACK")
	}
	if stack != "" {
		outputs, err := stackOutputs(ctx, cloudformation.NewFromConfig(cfg), stack)
		if err != nil {
			return nil, err
		}
		for _, r := range resourceSpecs {
			if p := r.field(&s.names); *p == "" {
				*p = outputs[r.output]
			}
		}
		s.outputs = outputs
	}
	return s, nil
}

// awsConfig loads the SDK configuration. With an endpoint (a stand-in) the region defaults to
// us-east-1 and, when no credentials are configured, static test credentials are used.
func (c *cli) awsConfig(ctx context.Context, o *options) (aws.Config, string, error) {
	endpoint := o.endpoint
	if endpoint == "" {
		endpoint = c.getenv("AWS_ENDPOINT_URL")
	}
	var opts []func(*config.LoadOptions) error
	if o.region != "" {
		opts = append(opts, config.WithRegion(o.region))
	}
	if endpoint != "" {
		opts = append(opts, config.WithBaseEndpoint(endpoint))
		if c.getenv("AWS_ACCESS_KEY_ID") == "" && c.getenv("AWS_PROFILE") == "" {
			opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")))
		}
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, "", fmt.Errorf("load AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		if endpoint == "" {
			return aws.Config{}, "", usageErrorf("no AWS region: set --region or AWS_REGION")
		}
		cfg.Region = standInRegion
	}
	return cfg, endpoint, nil
}

// stackOutputs returns the outputs of a CloudFormation stack by key.
func stackOutputs(ctx context.Context, cfn *cloudformation.Client, stack string) (map[string]string, error) {
	out, err := cfn.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: &stack})
	if err != nil {
		return nil, fmt.Errorf("describe stack %s: %w", stack, err)
	}
	if len(out.Stacks) == 0 {
		return nil, fmt.Errorf("describe stack %s: not found", stack)
	}
	m := make(map[string]string)
	for _, o := range out.Stacks[0].Outputs {
		m[aws.ToString(o.OutputKey)] = aws.ToString(o.OutputValue)
	}
	return m, nil
}

// bucket returns the bucket name, or a usage error when none is configured.
func (s *session) bucket() (string, error) {
	if s.names.Bucket == "" {
		return "", usageErrorf("no bucket: set --bucket, ORDERPIPE_BUCKET or --stack")
	}
	return s.names.Bucket, nil
}

// queueURL returns the URL of queue k, looking a name up once. It returns a usage error naming
// the flag when the queue is not configured.
func (s *session) queueURL(ctx context.Context, k resourceKind) (string, error) {
	spec := resourceSpecs[k]
	p := spec.field(&s.names)
	if *p == "" {
		return "", usageErrorf("no %s: set --%s, %s or --stack", spec.help, spec.flag, spec.env)
	}
	if strings.HasPrefix(*p, "https://") || strings.HasPrefix(*p, "http://") {
		return *p, nil
	}
	out, err := s.sqs.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: p})
	if err != nil {
		return "", fmt.Errorf("get url of queue %s: %w", *p, err)
	}
	*p = aws.ToString(out.QueueUrl)
	return *p, nil
}

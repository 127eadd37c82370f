package main

import (
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// nagRule is one cdk-nag suppression: the rule id, why it does not apply here, and optionally the
// findings it covers (for example "Resource::<Bucket.Arn>/uploads/*", or a "/regexp/"); none
// means all of them.
type nagRule struct {
	ID        string
	Reason    string
	AppliesTo []string
}

func nag(id, reason string, appliesTo ...string) nagRule {
	return nagRule{ID: id, Reason: reason, AppliesTo: appliesTo}
}

func (r nagRule) suppression() *cdknag.NagPackSuppression {
	s := &cdknag.NagPackSuppression{Id: jsii.String(r.ID), Reason: jsii.String(r.Reason)}
	if len(r.AppliesTo) > 0 {
		applies := make([]any, len(r.AppliesTo))
		for i, a := range r.AppliesTo {
			if len(a) > 2 && strings.HasPrefix(a, "/") && strings.HasSuffix(a, "/") {
				applies[i] = &cdknag.RegexAppliesTo{Regex: jsii.String(a)}
				continue
			}
			applies[i] = a
		}
		s.AppliesTo = &applies
	}
	return s
}

func suppressions(rules []nagRule) *[]*cdknag.NagPackSuppression {
	out := make([]*cdknag.NagPackSuppression, len(rules))
	for i, r := range rules {
		out[i] = r.suppression()
	}
	return &out
}

// suppress records rules as justified on c (and its children when children is true).
func suppress(c constructs.IConstruct, children bool, rules ...nagRule) {
	cdknag.NagSuppressions_AddResourceSuppressions(c, suppressions(rules), jsii.Bool(children))
}

// suppressPath is suppress for a construct the app does not hold, such as the stack-wide S3
// notifications handler, by its construct path.
func suppressPath(stack awscdk.Stack, path string, rules ...nagRule) {
	cdknag.NagSuppressions_AddResourceSuppressionsByPath(stack, jsii.String(path), suppressions(rules), jsii.Bool(true))
}

// ApplyNag runs the AwsSolutions cdk-nag pack over scope at synth time: each unsuppressed finding
// becomes an error (or warning) annotation, and `cdk synth` fails on errors.
func ApplyNag(scope constructs.IConstruct) {
	awscdk.Aspects_Of(scope).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)
}

// Package pipeline holds the settings that shape the deployed pipeline — timeouts, visibility,
// retention, receive counts, concurrency — and the rules AWS imposes on them (Settings.Validate
// lists and checks them). The CDK app (infra/) and the local runner (pkg/local) both build from these
// values, so what runs here is what deploys, and both refuse settings that break a rule.
package pipeline

// Command infra is the orderpipe CDK app: `cdk synth` (see cdk.json) runs it with `go run ./infra`.
//
// It reads the deployment from CDK context (see Config and ParseContext), checks every rule of
// pkg/pipeline plus the ones Settings does not cover before creating any resource, and builds one
// stack made of one construct per concern: Uploads (bucket, topic, files queue), OrderQueue,
// Ingest, Dispatch, Redrive and Monitoring. With context pipeline=true it instead builds a CDK
// Pipelines stack that deploys that stack from a source repository.
//
// Constructs take props of plain Go values and expose the resources they create as exported
// fields; jsii types stay inside them. The consumer constructs (Ingest, Dispatch) also register a
// CDK validation that re-checks the AWS rules on the synthesized resources, so a later edit that
// breaks a rule fails `cdk synth`. The AwsSolutions cdk-nag pack runs on every stack; each
// suppression carries its reason next to the code that needs it.
package main

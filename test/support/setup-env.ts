// The SDK warns once per process that future releases need Node 22; tests run on Node 20 by design.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
// CDK's built-in CloudFormation validation (a WASM rules engine run at every synth) never changes a template, and
// starting it costs seconds of CPU in every test file that synthesizes: off here, it runs in
// test/lib/cfn-validation.test.ts on the apps we deploy (set CDK_VALIDATION=true to run it at every synth).
process.env.CDK_VALIDATION ??= 'false';

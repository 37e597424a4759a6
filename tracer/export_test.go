package tracer

// EnvOptions are the options the environment asks the tests for
// (TWTOP_TIER, TWTOP_FALLBACK), for the tests of package tracer_test.
var EnvOptions = envOptions

// Package allocfree holds stand-ins that allocate nothing per request, for
// the tests that bound what a handler itself allocates
// (testing.AllocsPerRun on the inbound and outbound handlers): a
// transport answering every request with one response whose body is
// rewound, a ResponseWriter whose header map is reused, and Bound, the
// check itself.
package allocfree

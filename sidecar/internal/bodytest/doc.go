// Package bodytest holds the upstream the retry-replay tests of the
// outbound and the egress gateway share: its first request reads part of
// a streamed body and then resets (the connection for HTTP/1.1, the
// stream for HTTP/2), and a later one checks the body it gets byte for
// byte, telling the test when it has had a given prefix so that the test
// sends the rest only then (the retry must replay the copy, then carry on
// from the live client body). Events are channels; nothing is timed.
package bodytest

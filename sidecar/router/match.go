package router

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"google.golang.org/protobuf/proto"

	route "github.com/weftmesh/weft/api/xdsproto/envoy/config/route/v3"
	matcher "github.com/weftmesh/weft/api/xdsproto/envoy/type/matcher/v3"
)

// PathKind says how a Match compares the path.
type PathKind int

// Path kinds.
const (
	// PathPrefix: prefix (plain string prefix).
	PathPrefix PathKind = iota
	// PathExact: path.
	PathExact
	// PathSeparatedPrefix: path_separated_prefix: the prefix, then the end
	// of the path or a "/".
	PathSeparatedPrefix
	// PathRegex: safe_regex over the whole path.
	PathRegex
)

// Match is the request matcher of a route: path, headers (":method"
// included) and query parameters, ANDed.
type Match struct {
	Kind PathKind
	// Prefix is the prefix of PathPrefix and PathSeparatedPrefix.
	Prefix string
	// Path is the exact path of PathExact.
	Path string
	// Regex is the whole-path regex of PathRegex.
	Regex *regexp.Regexp
	// CaseInsensitive compares the path ignoring case (case_sensitive:
	// false; not for PathRegex).
	CaseInsensitive bool
	// Headers must all match.
	Headers []HeaderMatch
	// Query must all match.
	Query []QueryMatch
}

// Matches reports whether r matches m.
func (m *Match) Matches(r *http.Request) bool {
	p := r.URL.EscapedPath()
	if p == "" {
		p = "/"
	}
	if !m.matchPath(p) {
		return false
	}
	for i := range m.Headers {
		if !m.Headers[i].matches(r) {
			return false
		}
	}
	if len(m.Query) > 0 {
		q := r.URL.Query()
		for i := range m.Query {
			if !m.Query[i].matches(q) {
				return false
			}
		}
	}
	return true
}

func (m *Match) matchPath(p string) bool {
	switch m.Kind {
	case PathExact:
		if m.CaseInsensitive {
			return strings.EqualFold(p, m.Path)
		}
		return p == m.Path
	case PathRegex:
		return m.Regex.MatchString(p)
	}
	if len(p) < len(m.Prefix) {
		return false
	}
	if m.CaseInsensitive {
		if !strings.EqualFold(p[:len(m.Prefix)], m.Prefix) {
			return false
		}
	} else if p[:len(m.Prefix)] != m.Prefix {
		return false
	}
	if m.Kind == PathSeparatedPrefix {
		return len(p) == len(m.Prefix) || p[len(m.Prefix)] == '/' || strings.HasSuffix(m.Prefix, "/")
	}
	return true
}

// HeaderMatch matches one request header.
type HeaderMatch struct {
	// Name is the canonical header name, or ":method".
	Name string
	Kind HeaderMatchKind
	// Value is compared according to Kind (unused for Present and Regex).
	Value      string
	Regex      *regexp.Regexp
	IgnoreCase bool
	// Invert negates the result.
	Invert bool
}

// HeaderMatchKind says how a HeaderMatch compares.
type HeaderMatchKind int

// Header match kinds.
const (
	HeaderPresent HeaderMatchKind = iota
	HeaderExact
	HeaderPrefix
	HeaderSuffix
	HeaderContains
	HeaderRegex
)

const pseudoMethod = ":method"

func (h *HeaderMatch) matches(r *http.Request) bool {
	var vs []string
	var present bool
	if h.Name == pseudoMethod {
		vs, present = []string{r.Method}, true
	} else {
		vs, present = r.Header[h.Name]
	}
	var ok bool
	if h.Kind == HeaderPresent {
		ok = present
	} else if present {
		// Several values are compared joined, as Envoy does.
		v := vs[0]
		if len(vs) > 1 {
			v = strings.Join(vs, ",")
		}
		ok = compareString(h.Kind, v, h.Value, h.Regex, h.IgnoreCase)
	}
	return ok != h.Invert
}

func compareString(kind HeaderMatchKind, v, want string, re *regexp.Regexp, ignoreCase bool) bool {
	if kind == HeaderRegex {
		return re.MatchString(v)
	}
	if ignoreCase {
		v, want = strings.ToLower(v), strings.ToLower(want)
	}
	switch kind {
	case HeaderExact:
		return v == want
	case HeaderPrefix:
		return strings.HasPrefix(v, want)
	case HeaderSuffix:
		return strings.HasSuffix(v, want)
	case HeaderContains:
		return strings.Contains(v, want)
	}
	return false
}

// QueryMatch matches the first value of one query parameter.
type QueryMatch struct {
	Name       string
	Kind       HeaderMatchKind
	Value      string
	Regex      *regexp.Regexp
	IgnoreCase bool
}

func (q *QueryMatch) matches(vals url.Values) bool {
	vs, ok := vals[q.Name]
	if !ok {
		return false
	}
	if q.Kind == HeaderPresent {
		return true
	}
	v := ""
	if len(vs) > 0 {
		v = vs[0]
	}
	return compareString(q.Kind, v, q.Value, q.Regex, q.IgnoreCase)
}

// wholeRegex compiles an RE2 pattern anchored to match a whole value.
func wholeRegex(re string) (*regexp.Regexp, error) {
	r, err := regexp.Compile(`^(?:` + re + `)$`)
	if err != nil {
		return nil, fmt.Errorf("safe_regex %q: %w", re, err)
	}
	return r, nil
}

func compileMatch(rm *route.RouteMatch) (Match, error) {
	var m Match
	switch ps := rm.GetPathSpecifier().(type) {
	case *route.RouteMatch_Prefix:
		m.Kind, m.Prefix = PathPrefix, ps.Prefix
	case *route.RouteMatch_Path:
		m.Kind, m.Path = PathExact, ps.Path
	case *route.RouteMatch_PathSeparatedPrefix:
		m.Kind, m.Prefix = PathSeparatedPrefix, ps.PathSeparatedPrefix
	case *route.RouteMatch_SafeRegex:
		re, err := wholeRegex(ps.SafeRegex.GetRegex())
		if err != nil {
			return m, fmt.Errorf("match: %w", err)
		}
		m.Kind, m.Regex = PathRegex, re
	default:
		return m, fmt.Errorf("match: %T is not supported (prefix, path, path_separated_prefix and safe_regex only)", rm.GetPathSpecifier())
	}
	if cs := rm.GetCaseSensitive(); cs != nil && !cs.GetValue() {
		if m.Kind == PathRegex {
			return m, errors.New("match: case_sensitive false with safe_regex is not supported")
		}
		m.CaseInsensitive = true
	}
	// Anything else that narrows a match would be ignored: refuse it.
	rest := proto.Clone(rm).(*route.RouteMatch)
	rest.PathSpecifier, rest.CaseSensitive, rest.Headers, rest.QueryParameters = nil, nil, nil, nil
	if !proto.Equal(rest, &route.RouteMatch{}) {
		return m, errors.New("match: only path, prefix, path_separated_prefix, safe_regex, case_sensitive, headers and query_parameters are supported")
	}
	for _, h := range rm.GetHeaders() {
		hm, err := compileHeader(h)
		if err != nil {
			return m, fmt.Errorf("match: header %q: %w", h.GetName(), err)
		}
		m.Headers = append(m.Headers, hm)
	}
	for _, q := range rm.GetQueryParameters() {
		qm, err := compileQuery(q)
		if err != nil {
			return m, fmt.Errorf("match: query parameter %q: %w", q.GetName(), err)
		}
		m.Query = append(m.Query, qm)
	}
	return m, nil
}

func compileHeader(h *route.HeaderMatcher) (HeaderMatch, error) {
	out := HeaderMatch{Name: http.CanonicalHeaderKey(h.GetName()), Invert: h.GetInvertMatch()}
	if strings.HasPrefix(h.GetName(), ":") {
		if h.GetName() != pseudoMethod {
			return out, errors.New("pseudo-headers other than :method are not supported")
		}
		out.Name = pseudoMethod
	}
	if h.GetTreatMissingHeaderAsEmpty() {
		return out, errors.New("treat_missing_header_as_empty: not supported")
	}
	switch s := h.GetHeaderMatchSpecifier().(type) {
	case *route.HeaderMatcher_PresentMatch:
		out.Kind = HeaderPresent
		if !s.PresentMatch {
			out.Invert = !out.Invert
		}
	case *route.HeaderMatcher_ExactMatch:
		out.Kind, out.Value = HeaderExact, s.ExactMatch
	case *route.HeaderMatcher_PrefixMatch:
		out.Kind, out.Value = HeaderPrefix, s.PrefixMatch
	case *route.HeaderMatcher_SuffixMatch:
		out.Kind, out.Value = HeaderSuffix, s.SuffixMatch
	case *route.HeaderMatcher_ContainsMatch:
		out.Kind, out.Value = HeaderContains, s.ContainsMatch
	case *route.HeaderMatcher_SafeRegexMatch:
		re, err := wholeRegex(s.SafeRegexMatch.GetRegex())
		if err != nil {
			return out, err
		}
		out.Kind, out.Regex = HeaderRegex, re
	case *route.HeaderMatcher_StringMatch:
		var err error
		out.Kind, out.Value, out.Regex, out.IgnoreCase, err = compileString(s.StringMatch)
		if err != nil {
			return out, err
		}
	default:
		return out, fmt.Errorf("%T is not supported", s)
	}
	return out, nil
}

func compileQuery(q *route.QueryParameterMatcher) (QueryMatch, error) {
	out := QueryMatch{Name: q.GetName()}
	switch s := q.GetQueryParameterMatchSpecifier().(type) {
	case *route.QueryParameterMatcher_PresentMatch:
		if !s.PresentMatch {
			return out, errors.New("present_match false is not supported")
		}
		out.Kind = HeaderPresent
	case *route.QueryParameterMatcher_StringMatch:
		var err error
		out.Kind, out.Value, out.Regex, out.IgnoreCase, err = compileString(s.StringMatch)
		if err != nil {
			return out, err
		}
	default:
		return out, fmt.Errorf("%T is not supported", s)
	}
	return out, nil
}

func compileString(sm *matcher.StringMatcher) (HeaderMatchKind, string, *regexp.Regexp, bool, error) {
	ic := sm.GetIgnoreCase()
	switch p := sm.GetMatchPattern().(type) {
	case *matcher.StringMatcher_Exact:
		return HeaderExact, p.Exact, nil, ic, nil
	case *matcher.StringMatcher_Prefix:
		return HeaderPrefix, p.Prefix, nil, ic, nil
	case *matcher.StringMatcher_Suffix:
		return HeaderSuffix, p.Suffix, nil, ic, nil
	case *matcher.StringMatcher_Contains:
		return HeaderContains, p.Contains, nil, ic, nil
	case *matcher.StringMatcher_SafeRegex:
		if ic {
			return 0, "", nil, false, errors.New("string_match: ignore_case with safe_regex is not supported")
		}
		re, err := wholeRegex(p.SafeRegex.GetRegex())
		return HeaderRegex, "", re, false, err
	}
	return 0, "", nil, false, fmt.Errorf("string_match %T is not supported", sm.GetMatchPattern())
}

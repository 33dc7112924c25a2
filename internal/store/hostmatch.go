package store

import "strings"

// HostCondition is the SQL condition under which the column col, a
// request's Host as the audit trail records it, is one of hosts (see
// StatsQuery.Hosts); "" for no hosts. bind adds one argument and returns
// its placeholder, so that every engine writes its own.
//
// Hosts are compared in lower case (a client may send any case) and with
// or without a port; an IPv6 host is recorded in brackets.
func HostCondition(col string, hosts []string, bind func(v any) string) string {
	if len(hosts) == 0 {
		return ""
	}
	c := "lower(" + col + ")"
	like := func(pattern string) string { return c + " LIKE " + bind(pattern) + ` ESCAPE '\'` }
	var conds []string
	for _, h := range hosts {
		h = strings.ToLower(h)
		switch {
		case strings.HasPrefix(h, "*."):
			// One label before the rest, as site.Site.Serves matches.
			rest := likeEscape(h[1:])
			conds = append(conds, "(("+like("_%"+rest)+" OR "+like("_%"+rest+":%")+") AND NOT ("+
				like("%.%"+rest)+" OR "+like("%.%"+rest+":%")+"))")
		case strings.Contains(h, ":"):
			conds = append(conds, "("+c+" = "+bind("["+h+"]")+" OR "+like(likeEscape("["+h+"]:")+"%")+")")
		default:
			conds = append(conds, "("+c+" = "+bind(h)+" OR "+like(likeEscape(h+":")+"%")+")")
		}
	}
	return "(" + strings.Join(conds, " OR ") + ")"
}

// likeEscape escapes LIKE's wildcards (escape character '\').
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

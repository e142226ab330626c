package web

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// screen refuses, before any route, the requests a browser makes on behalf of another site's
// page:
//
//   - A request under a name the server does not answer to (its Host header) when it reached
//     the server on a loopback address, or, when Config.AllowedHosts is set, on any address:
//     421. A page of attacker.example whose name is made to resolve to 127.0.0.1 (DNS
//     rebinding) is same-origin with the server as far as the browser is concerned, so that it
//     could read the archive and queue papers; but its requests carry its own name. IP
//     addresses (a page cannot rebind those) and localhost always pass.
//   - A cross-site or same-site request that is not a top-level navigation, or for a search
//     not one the user made (Fetch Metadata: Sec-Fetch-Site cross-site or same-site — another
//     port of the host, a sibling domain — unless Sec-Fetch-Mode navigate with Sec-Fetch-Dest
//     document, and for /search and /api/search Sec-Fetch-User ?1): 403. An <img src=".../search?q=..."> on any page, or a script
//     navigating a window it opened again and again, would otherwise make the server pay for a
//     query embedding at each load. Following a link from another site (a click) passes, and
//     so do requests without Fetch Metadata (curl, scripts, old browsers).
func (s *Server) screen(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if name := hostName(r.Host); !s.answersTo(name, r) {
			s.writeError(w, r, http.StatusMisdirectedRequest, fmt.Sprintf(
				"this server does not answer to the name %.100q: if it is your name for it, add it to PAPERPIPE_HTTP_ALLOWED_HOSTS "+
					"(requests under other names are refused, as a web page can reach a server on this machine under its own name by DNS rebinding)", name))
			return
		}
		if crossSiteSubresource(r) {
			if r.URL.Path == "/search" && isNavigation(r) {
				s.offerSearch(w, r)
				return
			}
			s.writeError(w, r, http.StatusForbidden, "another site's page may link to this server but not load from it "+
				"(cross-site requests other than a link the user followed are refused)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// answersTo reports whether the server answers r, sent under the host name name.
func (s *Server) answersTo(name string, r *http.Request) bool {
	if name == "" || name == "localhost" || s.allowedHosts[name] {
		return true
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return true
	}
	return len(s.allowedHosts) == 0 && !onLoopback(r)
}

// hostName is the host of a Host header, lower-case, without port, brackets or a final dot.
func hostName(hostport string) string {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	return strings.TrimSuffix(strings.ToLower(host), ".")
}

// onLoopback reports whether r came in on a loopback address of the server.
func onLoopback(r *http.Request) bool {
	a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return false
	}
	ap, err := netip.ParseAddrPort(a.String())
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// crossSiteSubresource reports whether a browser sent r from another site's page other than
// as a top-level navigation (the user's own, for a search).
func crossSiteSubresource(r *http.Request) bool {
	h := r.Header
	switch h.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none": // no Fetch Metadata, the server's own pages, typed or bookmarked
		return false
	}
	// cross-site, or same-site: another port of this host (a dev server on localhost:3000) or a
	// sibling domain is no more the server's own page than any site.
	if !isNavigation(r) {
		return true
	}
	// A top-level navigation: a search buys a query embedding, so it must be the user's (a
	// page navigating a window it opened could buy one per load); other pages may be reached
	// through a link shortener's or mail filter's script or meta refresh, which is no click.
	return (r.URL.Path == "/search" || r.URL.Path == "/api/search") && h.Get("Sec-Fetch-User") != "?1"
}

// isNavigation reports whether r is a top-level navigation of a browser (Fetch Metadata).
func isNavigation(r *http.Request) bool {
	return r.Header.Get("Sec-Fetch-Mode") == "navigate" && r.Header.Get("Sec-Fetch-Dest") == "document"
}

// offerSearch answers a search page that another site's page opened without the user's click
// (a link shortener's or a mail filter's redirect to a shared search link): the search is not
// run, since that would buy a query embedding at each load, but the page offers it, as a link
// of the server's own, which a click runs, and with its words in the search box.
func (s *Server) offerSearch(w http.ResponseWriter, r *http.Request) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	data := errorPage{base: s.base("Search not run"), Code: http.StatusForbidden, Status: http.StatusText(http.StatusForbidden),
		Message: "This search was opened by another site's page without a click on this server's link (a link shortener's or " +
			"a mail filter's redirect does that), so it was not run: a search runs only when you ask for it.",
		Link: r.URL.Path + "?" + r.URL.RawQuery, LinkText: "Run the search", LinkQuery: q}
	data.Query = q
	if m := r.URL.Query().Get("mode"); m == ModeHybrid || m == ModeSemantic || m == ModeKeyword {
		data.Mode = m
	}
	s.render(w, r, http.StatusForbidden, "error", data)
}

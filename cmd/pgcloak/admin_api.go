package main

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/pgcloak/pgcloak/proxy"
)

// The admin API, on the admin listener beside /metrics and the probes,
// behind a bearer token (admin_token): without a token configured it is
// refused. It shows no personal data beyond who is connected: statements
// appear as fingerprints and normalized text, never with their values.
//
//	GET    /admin/sessions            the sessions being served
//	DELETE /admin/sessions/{id}       end one (FATAL 57P01 to its client)
//	GET    /admin/top?role=&limit=    statements per role, by total time
//	POST   /admin/reload              reload config, certificate and rules

// adminAPI adds the admin API to mux.
func adminAPI(mux *http.ServeMux, srv *proxy.Server, svc services) {
	auth := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			var want string
			if svc.token != nil {
				if p := svc.token.Load(); p != nil {
					want = *p
				}
			}
			if want == "" {
				http.Error(w, "the admin API is off: no admin_token is configured (PGCLOAK_ADMIN_TOKEN)", http.StatusForbidden)
				return
			}
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="pgcloak admin"`)
				http.Error(w, "a valid bearer token is needed", http.StatusUnauthorized)
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc("GET /admin/sessions", auth(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, srv.Sessions())
	}))
	mux.HandleFunc("DELETE /admin/sessions/{id}", auth(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if !srv.Terminate(id) {
			http.Error(w, "no session "+strconv.Quote(id), http.StatusNotFound)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"terminated": id})
	}))
	mux.HandleFunc("GET /admin/top", auth(func(w http.ResponseWriter, r *http.Request) {
		limit := 20
		if v := r.URL.Query().Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				http.Error(w, "limit: not a number", http.StatusBadRequest)
				return
			}
			limit = n
		}
		writeJSON(w, http.StatusOK, srv.Top(r.URL.Query().Get("role"), limit))
	}))
	mux.HandleFunc("POST /admin/reload", auth(func(w http.ResponseWriter, r *http.Request) {
		if svc.reloader == nil {
			http.Error(w, "nothing to reload", http.StatusServiceUnavailable)
			return
		}
		rep := svc.reloader.reload("admin API")
		code := http.StatusOK
		if len(rep.Errors) > 0 {
			code = http.StatusUnprocessableEntity
		}
		writeJSON(w, code, rep)
	}))
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

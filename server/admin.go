package server

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// AdminHandler returns the admin HTTP handler: POST /rotate, GET /stats, and
// the handlers added with WithAdminHandler (such as /metrics). Run serves it
// on the admin address (WithAdminAddr); mount it yourself otherwise. It must
// not be reachable from outside the pod unless protected: see WithAdminToken.
//
// POST /rotate takes the optional form or query values fraction (0 < f ≤ 1,
// default 1), count (a number of connections instead of a fraction) and
// spread (a Go duration, default Config.RotateSpread). It answers, once the
// GOAWAYs are sent, with JSON {"rotated": n, "reason": "admin"}.
func (s *Server) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /rotate", s.requireToken(s.handleRotate))
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Stats())
	})
	for _, h := range s.set.adminHandlers {
		mux.Handle(h.pattern, h.handler)
	}
	return mux
}

func (s *Server) handleRotate(w http.ResponseWriter, r *http.Request) {
	o := RotateOptions{Reason: ReasonAdmin, Spread: s.set.cfg.RotateSpread}
	if v := r.FormValue("fraction"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 || f > 1 {
			httpError(w, http.StatusBadRequest, fmt.Sprintf("fraction=%q: want a number in (0, 1]", v))
			return
		}
		o.Fraction = f
	}
	if v := r.FormValue("count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			httpError(w, http.StatusBadRequest, fmt.Sprintf("count=%q: want a whole number of at least 1", v))
			return
		}
		o.Count = n
	}
	if v := r.FormValue("spread"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > 10*time.Minute {
			httpError(w, http.StatusBadRequest, fmt.Sprintf("spread=%q: want a Go duration from 0s to 10m", v))
			return
		}
		o.Spread = d
	}
	n, err := s.Rotate(r.Context(), o)
	if err != nil {
		httpError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"rotated": n, "reason": string(o.Reason)})
}

func (s *Server) requireToken(h http.HandlerFunc) http.HandlerFunc {
	token := s.set.adminToken
	if token == "" {
		return h
	}
	want := []byte("Bearer " + token)
	return func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="rotor-admin"`)
			httpError(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		h(w, r)
	}
}

func httpError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// serveAdmin serves the admin handler on the configured address until ctx
// ends.
func (s *Server) serveAdmin(ctx context.Context) (stop func(), err error) {
	addr := s.set.adminAddr
	if addr == "" {
		return func() {}, nil
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("rotor/server: admin listener: %w", err)
	}
	hs := &http.Server{Handler: s.AdminHandler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(lis) }()
	s.log.Info("rotor: serving admin endpoints", "addr", lis.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		if hs.Shutdown(ctx) != nil {
			_ = hs.Close()
		}
	}, nil
}

// isLoopback reports whether addr's host is a loopback name or address.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

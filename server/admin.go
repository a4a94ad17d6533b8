package server

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"math"
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
// POST /rotate takes the optional form or query values of a Rotation:
// fraction (0 < f ≤ 1, default all), count (a number of connections instead
// of a fraction), spread and min_age (Go durations, or "off"). It answers,
// once the GOAWAYs are sent, with the RotateResult as JSON, e.g.
// {"rotated": 0, "skipped_young": 3, "skipped_draining": 0, "min_age": "1s",
// "reason": "admin"}, or 400 with {"error": …} for an invalid value.
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
	ro := Rotation{Reason: ReasonAdmin}
	var bad []string
	if v := r.FormValue("fraction"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			bad = append(bad, fmt.Sprintf("fraction=%q is not a number", v))
		}
		ro.Fraction = f
	}
	if v := r.FormValue("count"); v != "" {
		n, err := strconv.Atoi(v)
		switch {
		case errors.Is(err, strconv.ErrRange):
			bad = append(bad, fmt.Sprintf("count=%q is out of range (%d to %d)", v, math.MinInt, math.MaxInt))
		case err != nil:
			bad = append(bad, fmt.Sprintf("count=%q is not a whole number", v))
		}
		ro.Count = n
	}
	duration := func(name string, dst *time.Duration) {
		v := r.FormValue(name)
		if v == "" {
			return
		}
		var d durationFlag
		if err := d.Set(v); err != nil {
			bad = append(bad, fmt.Sprintf("%s=%q is not a Go duration such as 2s, nor \"off\"", name, v))
		}
		*dst = time.Duration(d)
	}
	duration("spread", &ro.Spread)
	duration("min_age", &ro.MinAge)
	if len(bad) > 0 {
		httpError(w, http.StatusBadRequest, strings.Join(bad, "; "))
		return
	}
	res, err := s.Rotate(r.Context(), ro)
	var ce *ConfigError
	switch {
	case errors.As(err, &ce):
		httpError(w, http.StatusBadRequest, err.Error())
		return
	case err != nil:
		// The client went away while the GOAWAYs were being spread.
		httpError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"rotated": res.Rotated, "skipped_young": res.Young, "skipped_draining": res.Draining,
		"min_age": res.MinAge.String(), "reason": string(ro.Reason),
	})
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

// serveAdmin serves the admin handler on the configured address until stop
// is called.
func (s *Server) serveAdmin() (stop func(), err error) {
	addr := s.set.adminAddr
	if addr == "" {
		return func() {}, nil
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("rotor: admin listener: %w", err)
	}
	hs := &http.Server{Handler: s.AdminHandler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(lis) }()
	s.log.Info("serving admin endpoints", "addr", lis.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
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

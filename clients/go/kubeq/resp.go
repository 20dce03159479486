// Package kubeq is a client for kubeq's wire protocol (docs/protocol.md, version 1): it
// enqueues jobs for kubeq's Python workers and reads their results, straight to Redis
// (Client) or through `kubeq gateway` (Gateway). It uses only the standard library.
package kubeq

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// conn is one RESP2 connection to Redis.
type conn struct {
	c net.Conn
	r *bufio.Reader
}

// redisError is an error reply of Redis (e.g. NOSCRIPT).
type redisError string

func (e redisError) Error() string { return string(e) }

func dial(rawURL string) (*conn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "6379")
	}
	var c net.Conn
	switch u.Scheme {
	case "redis":
		c, err = net.DialTimeout("tcp", host, 10*time.Second)
	case "rediss":
		c, err = tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", host,
			&tls.Config{ServerName: u.Hostname()})
	default:
		return nil, fmt.Errorf("redis url: scheme %q: use redis:// or rediss://", u.Scheme)
	}
	if err != nil {
		return nil, err
	}
	cn := &conn{c: c, r: bufio.NewReader(c)}
	if pw, ok := u.User.Password(); ok {
		args := []string{"AUTH", pw}
		if name := u.User.Username(); name != "" {
			args = []string{"AUTH", name, pw}
		}
		if _, err := cn.do(0, args...); err != nil {
			c.Close()
			return nil, err
		}
	}
	if db := strings.Trim(u.Path, "/"); db != "" && db != "0" {
		if _, err := cn.do(0, "SELECT", db); err != nil {
			c.Close()
			return nil, err
		}
	}
	return cn, nil
}

// do sends one command and reads its reply; block is how long Redis may hold the reply
// back (a blocking command) on top of the usual 30 s.
func (cn *conn) do(block time.Duration, args ...string) (any, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if err := cn.c.SetDeadline(time.Now().Add(30*time.Second + block)); err != nil {
		return nil, err
	}
	if _, err := io.WriteString(cn.c, b.String()); err != nil {
		return nil, err
	}
	return cn.read()
}

func (cn *conn) read() (any, error) {
	line, err := cn.r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 {
		return nil, errors.New("redis: short reply")
	}
	kind, body := line[0], line[1:len(line)-2]
	switch kind {
	case '+':
		return body, nil
	case '-':
		return nil, redisError(body)
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return nil, err // nil bulk string
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(cn.r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return nil, err // nil array
		}
		out := make([]any, n)
		for i := range out {
			if out[i], err = cn.read(); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("redis: unknown reply type %q", kind)
}

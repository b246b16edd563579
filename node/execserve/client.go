package execserve

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// ErrBroken is wrapped by every Call on a Client whose stream can no longer
// be trusted: the server went away, or an earlier call was abandoned when
// its context ended (its answer may still arrive and would be taken for
// the next one's). Its owner closes the stream and starts another.
var ErrBroken = errors.New("exec stream broken")

// Client sends requests to a Serve over a pair of streams. One call at a
// time: the protocol answers in order and has no request IDs.
type Client struct {
	w      io.Writer
	r      *bufio.Reader
	broken error
}

// NewClient talks to a server that reads w and writes r.
func NewClient(w io.Writer, r io.Reader) *Client {
	return &Client{w: w, r: bufio.NewReader(r)}
}

// Call runs argv on the server and returns its answer. ctx's deadline goes
// with the request, so the server kills a command that outlives it; a
// ctx that ends first abandons the call and breaks the client. A Response
// with Error set is returned as is: the stream is still good.
func (c *Client) Call(ctx context.Context, argv []string) (Response, error) {
	if c.broken != nil {
		return Response{}, c.broken
	}
	req := Request{Argv: argv}
	if dl, ok := ctx.Deadline(); ok {
		req.TimeoutMs = max(1, time.Until(dl).Milliseconds())
	}
	line, err := json.Marshal(req)
	if err != nil {
		return Response{}, fmt.Errorf("encode request: %w", err)
	}
	type answer struct {
		resp Response
		err  error
	}
	ch := make(chan answer, 1)
	go func() {
		var a answer
		if _, err := c.w.Write(append(line, '\n')); err != nil {
			a.err = fmt.Errorf("send request: %w: %w", ErrBroken, err)
			ch <- a
			return
		}
		data, err := c.r.ReadBytes('\n')
		switch {
		case err != nil:
			a.err = fmt.Errorf("read answer: %w: %w", ErrBroken, err)
		default:
			if err := json.Unmarshal(data, &a.resp); err != nil {
				a.err = fmt.Errorf("decode answer %q: %w: %w", data, ErrBroken, err)
			}
		}
		ch <- a
	}()
	select {
	case a := <-ch:
		if a.err != nil {
			c.broken = a.err
		}
		return a.resp, a.err
	case <-ctx.Done():
		c.broken = fmt.Errorf("an earlier call was abandoned: %w", ErrBroken)
		return Response{}, ctx.Err()
	}
}

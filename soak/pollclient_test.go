package soak

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The soak's long-poll clients (CONTRACT §8), net/http as the peer. A poll session runs like
// a WebSocket session (numbered messages, a bye the backend acknowledges through /send), and
// then leaves by /poll/c ("close"), by a backend /disconnect ("kick"), or by no longer polling
// ("vanish": the relay must expire it with 1006 after --poll-session-timeout). A close record
// (a kick, or 1011 when the backend failed) ends its poller.

// pollTransport carries every poll client's requests. The relay closes an idle keep-alive
// connection after --handshake-timeout (10 s); the client lets go of it after 1 s, first.
var pollTransport = &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Second}

var pollHTTP = &http.Client{Transport: pollTransport}

// pollSend is how one /poll/s request ended.
type pollSend int

const (
	sendAccepted  pollSend = iota // 201: queued for the backend
	sendGone                      // 403: the session is closed; the message was not taken
	sendUncertain                 // a network error: taken or not, nobody can tell
	sendRefused                   // 503 past the retry budget, or an unexpected status
)

type pollRecord struct {
	Seq  uint64 `json:"seq"`
	Type string `json:"type"`
	Data string `json:"data"`
	Code int    `json:"code"`
}

func runPollSession(base, key string, life time.Duration) *session {
	s := &session{key: key, transport: "poll", got: make(map[string]int)}
	modes := []string{"close", "vanish", "kick"}
	s.mode = modes[rand.IntN(len(modes))]
	id, err := pollCreate(base, key)
	if err != nil {
		s.closeCode = -1
		return s
	}
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	ackCh := make(chan struct{})
	pollerDone := make(chan struct{})
	go func() {
		defer close(pollerDone)
		s.poll(ctx, &mu, base, id, ackCh)
	}()
	// Whatever way the session ends, the poller has stopped before s is read.
	defer func() {
		cancel()
		<-pollerDone
	}()

	send := func(msg string) bool {
		switch s.send(base, id, msg, pollerDone) {
		case sendAccepted:
			s.sent = append(s.sent, msg)
		case sendUncertain:
			s.uncertain = append(s.uncertain, msg)
		case sendGone:
			return false
		case sendRefused:
			s.refused++
		}
		return true
	}
	// One session in four floods: a message the backend holds for a second, then 300 more
	// at once, which fill the relay's inbound queue (256): 503s to retry after Retry-After.
	floodAt := -1
	if rand.IntN(4) == 0 {
		floodAt = rand.IntN(20)
	}
	end := time.Now().Add(life)
	for seq := 0; time.Now().Before(end) && seq < 10_000; seq++ {
		if !send(key + "|" + strconv.Itoa(seq)) {
			break
		}
		if seq == floodAt {
			s.floods++
			ok := send("hold|" + key + "|" + strconv.Itoa(seq))
			for i := 0; ok && i < 300; i++ {
				ok = send(key + "|f" + strconv.Itoa(i))
			}
			if !ok {
				break
			}
		}
		select {
		case <-pollerDone: // a close record: the session is over
			return s
		case <-time.After(time.Duration(10+rand.IntN(40)) * time.Millisecond):
		}
	}
	send("bye|" + key + "|" + s.mode)
	var ended bool
	if s.acked, ended = awaitAck(ackCh, pollerDone, 15*time.Second); !s.acked || ended {
		return s // ended, or no ACK in time: the session vanishes and the relay expires it
	}
	switch s.mode {
	case "close":
		cancel()
		<-pollerDone
		if status, err := pollPost(base + "/poll/c/" + id); err != nil || status != 200 {
			s.closeErr = "poll/c: " + strconv.Itoa(status) + " " + errString(err)
		}
	case "vanish": // stop polling: the held poll's connection goes, nothing more is asked
		cancel()
		<-pollerDone
	case "kick": // the backend disconnects us: the close record ends the poller
		select {
		case <-pollerDone:
		case <-time.After(10 * time.Second):
		}
	}
	return s
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// pollCreate opens a session; the connect POST carries the create request's headers.
func pollCreate(base, key string) (string, error) {
	req, err := http.NewRequest("POST", base+"/poll/create", nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("X-Soak-Session", key)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := pollHTTP.Do(req.WithContext(ctx))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var created struct {
		OK     bool   `json:"ok"`
		Socket string `json:"socket"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&created); err != nil {
		return "", err
	}
	if resp.StatusCode != 200 || !created.OK || created.Socket == "" {
		return "", errors.New("create: " + resp.Status)
	}
	return created.Socket, nil
}

func pollPost(u string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := pollHTTP.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// send POSTs one message as a text/plain body, retrying a 503 after its Retry-After (the
// message was refused, so a retry cannot duplicate it) for 20 s at most. A POST with a body is
// never retried by net/http once bytes were written, so a network error leaves one message
// whose fate is unknown, never two copies. stop ends the retries (the session closed).
func (s *session) send(base, id, msg string, stop <-chan struct{}) pollSend {
	giveUp := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		req, err := http.NewRequestWithContext(ctx, "POST", base+"/poll/s/"+id, strings.NewReader(msg))
		if err != nil {
			cancel()
			return sendRefused
		}
		req.Header.Set("Content-Type", "text/plain; charset=utf-8")
		resp, err := pollHTTP.Do(req)
		if err != nil {
			cancel()
			return sendUncertain
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		cancel()
		switch resp.StatusCode {
		case 201:
			return sendAccepted
		case 403:
			return sendGone
		case 503:
			s.retries503++
			wait, err := strconv.Atoi(resp.Header.Get("Retry-After"))
			if err != nil || wait < 0 {
				s.statusErr = append(s.statusErr, "503 with Retry-After "+strconv.Quote(resp.Header.Get("Retry-After")))
				return sendRefused
			}
			if time.Now().Add(time.Duration(wait) * time.Second).After(giveUp) {
				return sendRefused
			}
			select {
			case <-stop:
				return sendGone
			case <-time.After(time.Duration(wait) * time.Second):
			}
		default:
			s.statusErr = append(s.statusErr, "/poll/s answered "+resp.Status)
			return sendRefused
		}
	}
}

// poll polls until a close record, a 403 or ctx's end: each poll acknowledges the last seq
// received, and a message whose seq was seen already (sent again because an answer was lost
// or not yet confirmed) is dropped. mu guards s.got and s.closeCode.
func (s *session) poll(ctx context.Context, mu *sync.Mutex, base, id string, ackCh chan struct{}) {
	var last uint64
	failedSince := time.Time{}
	for ctx.Err() == nil {
		ttl := 500 + rand.IntN(1500)
		q := url.Values{"ttl": {strconv.Itoa(ttl)}, "ack": {strconv.FormatUint(last, 10)}}
		recs, status, err := pollOnce(ctx, base+"/poll/j/"+id+"?"+q.Encode(), time.Duration(ttl)*time.Millisecond+5*time.Second)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// A lost answer loses nothing: the next poll with the same ack gets it again.
			mu.Lock()
			s.pollErrors++
			mu.Unlock()
			if failedSince.IsZero() {
				failedSince = time.Now()
			} else if time.Since(failedSince) > 10*time.Second {
				return
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		failedSince = time.Time{}
		if status == 403 { // expired or unknown, without a close record
			mu.Lock()
			s.closeCode = 1006
			s.statusErr = append(s.statusErr, "poll answered 403 before any close record")
			mu.Unlock()
			return
		}
		if status != 200 {
			mu.Lock()
			s.statusErr = append(s.statusErr, "poll answered "+strconv.Itoa(status))
			mu.Unlock()
			time.Sleep(50 * time.Millisecond)
			continue
		}
		for _, r := range recs {
			switch r.Type {
			case "heartbeat":
			case "close":
				mu.Lock()
				s.closeCode = r.Code
				mu.Unlock()
				// Confirm what came before the close record; the relay then forgets the session.
				q := url.Values{"ttl": {"0"}, "ack": {strconv.FormatUint(last, 10)}}
				_, _, _ = pollOnce(ctx, base+"/poll/j/"+id+"?"+q.Encode(), 5*time.Second)
				return
			default:
				if r.Seq <= last {
					mu.Lock()
					s.redelivered++
					mu.Unlock()
					continue
				}
				if r.Seq != last+1 {
					mu.Lock()
					s.statusErr = append(s.statusErr, "seq "+strconv.FormatUint(r.Seq, 10)+" after "+strconv.FormatUint(last, 10))
					mu.Unlock()
				}
				last = r.Seq
				mu.Lock()
				s.got[r.Data]++
				firstAck := r.Data == "ACK" && s.got[r.Data] == 1
				mu.Unlock()
				if firstAck {
					close(ackCh)
				}
			}
		}
	}
}

func pollOnce(ctx context.Context, u string, timeout time.Duration) ([]pollRecord, int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := pollHTTP.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, 0, err
	}
	if resp.StatusCode != 200 {
		return nil, resp.StatusCode, nil
	}
	var answer struct {
		OK       bool         `json:"ok"`
		Messages []pollRecord `json:"messages"`
	}
	if err := json.Unmarshal(raw, &answer); err != nil {
		return nil, 0, err
	}
	return answer.Messages, 200, nil
}

// A clock in a worker. Browsers throttle timers of background tabs (down to one
// wake-up a minute), which would let heartbeats lapse and get the miner closed
// with 4009; messages from a worker are not throttled that way.
// in: the period in milliseconds (0 stops); out: an empty message per period.

let timer = null;

self.onmessage = ({ data }) => {
  clearInterval(timer);
  timer = data > 0 ? setInterval(() => self.postMessage(0), data) : null;
};

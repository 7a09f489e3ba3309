"""Device traffic: bytes in, frames committed, replies out, whatever carries them.

* `pipeline`: the one path every transport feeds (detect -> framer -> session -> writer ->
  replies released after the commit), with the rules that apply to every device stream.
* `session`: what one stream of one device remembers (identity lock, rate, protocol state).
* `tcp`, `mqtt`: the transports; they only move bytes and report backpressure.
"""

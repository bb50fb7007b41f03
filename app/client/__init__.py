"""Client side: `hookscope forward`, the relay client that receives an endpoint's captures over a websocket and sends
them to local targets."""

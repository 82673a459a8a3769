"""The wire contract: messages, events, topics, codec, project states."""

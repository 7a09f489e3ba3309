"""The gateway server: transports, sessions, storage, activation, web."""

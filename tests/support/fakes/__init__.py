"""Local fakes of the servers the bot talks to, reached over the libraries' real transports."""

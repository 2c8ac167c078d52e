from archzoo.cli import entry

entry()

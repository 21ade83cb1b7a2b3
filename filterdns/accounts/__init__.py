"""Console accounts, below both the web console and the command line: the rules for names,
emails and passwords (``rules``), password and token hashing (``passwords``), and reading
a school's CSV of parents (``parent_csv``). ``filterdns user`` and the console's pages
share them, so an account made either way follows the same rules."""

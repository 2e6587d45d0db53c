IO.binwrite(IO.binread(:stdio, :eof))

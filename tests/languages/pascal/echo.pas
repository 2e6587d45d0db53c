{ Copies standard input to standard output byte for byte. }
program Echo;
var
  Buffer: array[0..4095] of Byte;
  Got: LongInt;
  InFile, OutFile: File;
begin
  FileMode := 0; { read-only: read/write would keep the pipe's write end open }
  Assign(InFile, '/dev/stdin');
  Reset(InFile, 1);
  Assign(OutFile, '/dev/stdout');
  Rewrite(OutFile, 1);
  repeat
    BlockRead(InFile, Buffer, SizeOf(Buffer), Got);
    if Got > 0 then
      BlockWrite(OutFile, Buffer, Got);
  until Got = 0;
  Close(OutFile);
end.

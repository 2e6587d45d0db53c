program Broken;
begin
  WriteLn(UndefinedThing);
end.

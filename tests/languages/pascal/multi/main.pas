program Main;

uses Helper;

begin
  WriteLn('twice=', Twice(21));
end.

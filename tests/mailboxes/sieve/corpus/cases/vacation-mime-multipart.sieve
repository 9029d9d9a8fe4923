require "vacation";
vacation :mime :subject "Away" text:
Content-Type: multipart/alternative; boundary="v"

--v
Content-Type: text/plain

Away.
--v
Content-Type: text/html

<p>Away.</p>
--v--
.
;

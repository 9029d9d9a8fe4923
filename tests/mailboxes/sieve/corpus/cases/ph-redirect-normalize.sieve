# Ideas from Pigeonhole tests/execute/address-normalize.svtest: quoted local parts.
redirect "\"S[r]us\"@example.net";
redirect "\"Sirius\"@example.net";
redirect "\"Stephan Bosch\" <\"S.Bosch\"@example.net>";

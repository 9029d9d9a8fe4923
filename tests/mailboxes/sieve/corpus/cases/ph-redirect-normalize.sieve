# Ideas from Pigeonhole tests/execute/address-normalize.svtest: quoted local parts.
redirect "\"S[a]m\"@example.net";
redirect "\"Sirio\"@example.net";
redirect "\"Sam Sample\" <\"S.Sample\"@example.net>";

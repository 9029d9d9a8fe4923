frobnicate "x";

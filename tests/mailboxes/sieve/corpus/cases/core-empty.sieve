# A script with only comments and no actions: implicit keep.
/* nothing
   to do */
# really nothing

-- wrk script for the nginx-proxy recording: each connection waits a few
-- milliseconds before each request, which keeps the upstream connection
-- rate, and so the recording, small.
function delay()
   return 20
end

#include "ledger.h"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <sstream>

namespace standin {

void record(const std::string& event) {
  const char* path = std::getenv("AXLLM_STANDIN_LEDGER");
  if (!path) return;
  std::ostringstream line;
  line << event << " tid=" << static_cast<unsigned long>(pthread_self()) << "\n";
  const std::string s = line.str();
  const int fd = ::open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return;
  const ssize_t ignored = ::write(fd, s.data(), s.size());
  (void)ignored;
  ::close(fd);
}

int injected_failure(const char* function) {
  const char* fail = std::getenv("AXLLM_STANDIN_FAIL");
  return fail && std::strcmp(fail, function) == 0 ? static_cast<int>(0x80060001u) : 0;
}

}  // namespace standin
